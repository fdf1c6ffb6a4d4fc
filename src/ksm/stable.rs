//! The stable tree: KSM pages sorted by content, with `max_page_sharing` chains.
//!
//! Upstream keeps one rbtree per NUMA node (one in all when `merge_across_nodes=1`)
//! whose nodes are `struct ksm_stable_node`s compared by page content (`memcmp_pages`).
//! A content with more than one KSM page is represented by a *chain* node in the tree
//! whose `hlist` holds the KSM pages' nodes, then called *dups* (`alloc_stable_node_chain`,
//! `stable_node_chain_add_dup`). Here page contents are content ids, so each tree is a
//! hash map from content id to its root (a plain node or a chain): a lookup finds exactly
//! the node that the rbtree walk would stop at. What a hash map cannot reproduce is the
//! side work of that walk on *other* contents' nodes along the path (`chain_prune` and
//! stale-node removal of unrelated contents); here stale nodes are found only when their
//! own content is searched or one of their rmap_items is visited — one pass later at
//! most, with no effect on `pages_shared`/`pages_sharing` (those already dropped when the
//! node's last rmap_item left it or it was noticed stale).
//!
//! This module holds the data and the tree-shape operations; the counter and rmap_item
//! side of removing a node (`remove_node_from_stable_tree`) lives in `ksmd.rs`.

use super::hash::IntMap;

/// "No node" in `u32` index fields.
pub const NONE: u32 = u32::MAX;

/// One KSM page (`struct ksm_stable_node` that is not a chain).
#[derive(Clone, Debug, Default)]
pub struct StableNode {
    /// Content of the KSM page.
    pub content: u64,
    /// `rmap_hlist_len`: rmap_items hanging off this node.
    pub len: u32,
    /// Page-table entries mapping the KSM page; 0 means the page has been freed and
    /// the node is stale (noticed by `ksm_get_folio` the next time it is looked at).
    pub mapcount: u32,
    /// The chain this node is a dup of, or [`NONE`] when it is itself the tree entry.
    pub chain: u32,
    /// Tree (NUMA node) it is filed in.
    pub nid: u16,
    pub live: bool,
}

/// A chain node: several KSM pages of one content (`STABLE_NODE_CHAIN`).
#[derive(Clone, Debug, Default)]
pub struct Chain {
    pub content: u64,
    pub nid: u16,
    /// Dups, head first (`hlist_add_head` order).
    pub dups: Vec<u32>,
    /// `chain_prune_time`, in jiffies.
    pub prune_jiffies: u64,
    pub live: bool,
}

/// What the tree holds for a content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    Node(u32),
    Chain(u32),
}

const CHAIN_BIT: u32 = 1 << 31;

impl Root {
    fn encode(self) -> u32 {
        match self {
            Root::Node(n) => n,
            Root::Chain(c) => c | CHAIN_BIT,
        }
    }
    fn decode(v: u32) -> Root {
        if v & CHAIN_BIT != 0 {
            Root::Chain(v & !CHAIN_BIT)
        } else {
            Root::Node(v)
        }
    }
}

/// All stable trees (one per NUMA node in use) and their nodes.
#[derive(Default)]
pub struct StableTree {
    pub nodes: Vec<StableNode>,
    free_nodes: Vec<u32>,
    pub chains: Vec<Chain>,
    free_chains: Vec<u32>,
    roots: Vec<IntMap<u64, u32>>,
    /// `ksm_stable_node_chains`.
    pub n_chains: u64,
    /// `ksm_stable_node_dups`.
    pub n_dups: u64,
}

impl StableTree {
    pub fn new(trees: usize) -> Self {
        StableTree {
            roots: (0..trees.max(1)).map(|_| IntMap::default()).collect(),
            ..Default::default()
        }
    }

    /// Replaces the set of trees (only when empty: `merge_across_nodes` switches).
    pub fn set_trees(&mut self, trees: usize) {
        self.roots = (0..trees.max(1)).map(|_| IntMap::default()).collect();
    }

    pub fn root(&self, nid: u16, content: u64) -> Option<Root> {
        self.roots
            .get(usize::from(nid))
            .and_then(|m| m.get(&content))
            .map(|v| Root::decode(*v))
    }

    fn set_root(&mut self, nid: u16, content: u64, root: Root) {
        if let Some(m) = self.roots.get_mut(usize::from(nid)) {
            m.insert(content, root.encode());
        }
    }

    fn clear_root(&mut self, nid: u16, content: u64) {
        if let Some(m) = self.roots.get_mut(usize::from(nid)) {
            m.remove(&content);
        }
    }

    /// A new KSM page's node, not yet in any tree.
    pub fn alloc_node(&mut self, content: u64, nid: u16) -> u32 {
        let node = StableNode {
            content,
            len: 0,
            mapcount: 0,
            chain: NONE,
            nid,
            live: true,
        };
        if let Some(i) = self.free_nodes.pop() {
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    pub fn node(&self, n: u32) -> &StableNode {
        &self.nodes[n as usize]
    }

    pub fn node_mut(&mut self, n: u32) -> &mut StableNode {
        &mut self.nodes[n as usize]
    }

    /// Files node `n` as the plain tree entry of its content.
    pub fn insert_plain(&mut self, n: u32) {
        let (nid, content) = (self.node(n).nid, self.node(n).content);
        self.set_root(nid, content, Root::Node(n));
    }

    /// `alloc_stable_node_chain`: the plain entry `n` becomes the first dup of a new chain.
    pub fn make_chain(&mut self, n: u32, now_jiffies: u64) -> u32 {
        let (nid, content) = (self.node(n).nid, self.node(n).content);
        let chain = Chain {
            content,
            nid,
            dups: Vec::new(),
            prune_jiffies: now_jiffies,
            live: true,
        };
        let c = if let Some(i) = self.free_chains.pop() {
            self.chains[i as usize] = chain;
            i
        } else {
            self.chains.push(chain);
            (self.chains.len() - 1) as u32
        };
        self.n_chains += 1;
        self.set_root(nid, content, Root::Chain(c));
        self.add_dup(c, n);
        c
    }

    /// `stable_node_chain_add_dup`: `n` joins chain `c` at the head.
    pub fn add_dup(&mut self, c: u32, n: u32) {
        self.chains[c as usize].dups.insert(0, n);
        self.nodes[n as usize].chain = c;
        self.n_dups += 1;
    }

    /// Takes node `n` out of its tree or chain and frees it (`stable_node_dup_del` +
    /// `free_stable_node`). A chain left empty or with one dup stays until a search
    /// walks it (as upstream).
    pub fn unlink_and_free(&mut self, n: u32) {
        let node = &self.nodes[n as usize];
        let (chain, nid, content) = (node.chain, node.nid, node.content);
        if chain != NONE {
            let dups = &mut self.chains[chain as usize].dups;
            if let Some(pos) = dups.iter().position(|d| *d == n) {
                dups.remove(pos);
            }
            self.n_dups -= 1;
        } else if self.root(nid, content) == Some(Root::Node(n)) {
            self.clear_root(nid, content);
        }
        self.nodes[n as usize] = StableNode::default();
        self.free_nodes.push(n);
    }

    /// The chain's only dup becomes the plain tree entry again; the chain is freed.
    pub fn collapse(&mut self, c: u32, found: u32) {
        let (nid, content) = (self.chains[c as usize].nid, self.chains[c as usize].content);
        self.nodes[found as usize].chain = NONE;
        self.set_root(nid, content, Root::Node(found));
        self.release_chain(c);
        self.n_chains -= 1;
        self.n_dups -= 1;
    }

    /// `free_stable_node_chain` for an empty chain.
    pub fn free_chain(&mut self, c: u32) {
        let (nid, content) = (self.chains[c as usize].nid, self.chains[c as usize].content);
        if self.root(nid, content) == Some(Root::Chain(c)) {
            self.clear_root(nid, content);
        }
        self.release_chain(c);
        self.n_chains -= 1;
    }

    fn release_chain(&mut self, c: u32) {
        self.chains[c as usize] = Chain::default();
        self.free_chains.push(c);
    }

    pub fn move_to_front(&mut self, c: u32, n: u32) {
        let dups = &mut self.chains[c as usize].dups;
        if let Some(pos) = dups.iter().position(|d| *d == n) {
            dups.remove(pos);
            dups.insert(0, n);
        }
    }

    /// Every live node index (plain entries and dups).
    pub fn live_nodes(&self) -> Vec<u32> {
        (0..self.nodes.len() as u32)
            .filter(|n| self.nodes[*n as usize].live)
            .collect()
    }

    /// Every live chain index.
    pub fn live_chains(&self) -> Vec<u32> {
        (0..self.chains.len() as u32)
            .filter(|c| self.chains[*c as usize].live)
            .collect()
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        let maps: usize = self
            .roots
            .iter()
            .map(|m| m.capacity() * (std::mem::size_of::<(u64, u32)>() + 1))
            .sum();
        let chains: usize = self
            .chains
            .iter()
            .map(|c| c.dups.capacity() * 4)
            .sum::<usize>()
            + self.chains.capacity() * std::mem::size_of::<Chain>();
        maps + chains
            + self.nodes.capacity() * std::mem::size_of::<StableNode>()
            + self.free_nodes.capacity() * 4
            + self.free_chains.capacity() * 4
    }
}
