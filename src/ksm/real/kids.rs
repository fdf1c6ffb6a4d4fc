//! The parent's side of the workload processes: forking them, their pipes, reaping,
//! and killing every one still alive when dropped (on success, error or panic).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use super::child::{self, ChildPlan, Msg, MSG_LEN};
use super::RealError;

/// One forked workload process.
pub(super) struct Kid {
    pub(super) name: String,
    pub(super) pid: libc::pid_t,
    /// Carries t0 to the child; dropping it lets a finished child exit.
    go: File,
    msgs: File,
    buf: Vec<u8>,
    /// Its wait status, once reaped.
    status: Option<libc::c_int>,
}

impl Kid {
    pub(super) fn reaped(&self) -> bool {
        self.status.is_some()
    }
}

/// All workload processes of a run, in workload order.
pub(super) struct Kids {
    kids: Vec<Kid>,
    owner: u32,
}

impl Kids {
    pub(super) fn new() -> Kids {
        Kids {
            kids: Vec::new(),
            owner: std::process::id(),
        }
    }

    pub(super) fn get(&self, i: usize) -> &Kid {
        &self.kids[i]
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Kid> {
        self.kids.iter()
    }

    /// Forks the process for `plan`; it maps and fills its memory and reports `Ready`.
    pub(super) fn spawn(
        &mut self,
        name: &str,
        plan: &mut ChildPlan,
        base: Instant,
    ) -> Result<(), RealError> {
        let (go_read, go_write) = pipe()?;
        let (msgs_read, msgs_write) = pipe()?;
        let name = name.to_string();
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: fork has no memory-safety preconditions. In the child only
        // `child::run` runs: it allocates nothing and takes no lock (it uses what was
        // prepared before the fork) and ends in `_exit`, never returning here.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(RealError::Os {
                what: "fork",
                source: std::io::Error::last_os_error(),
            }),
            0 => {
                drop(go_write);
                drop(msgs_read);
                child::run(plan, go_read, msgs_write, base, parent)
            }
            pid => {
                drop(go_read);
                drop(msgs_write);
                // The kid is registered before anything else can fail, so that it is
                // killed whatever happens next.
                self.kids.push(Kid {
                    name,
                    pid,
                    go: File::from(go_write),
                    msgs: File::from(msgs_read),
                    buf: Vec::new(),
                    status: None,
                });
                set_nonblocking(&self.kids.last().expect("just pushed").msgs)
            }
        }
    }

    /// Tells every child that the run started at `t0_ns` on its clock.
    pub(super) fn start(&mut self, t0_ns: u64) -> Result<(), RealError> {
        for kid in &mut self.kids {
            kid.go
                .write_all(&t0_ns.to_le_bytes())
                .map_err(|source| RealError::Child {
                    name: kid.name.clone(),
                    message: format!("cannot be started: {source}"),
                })?;
        }
        Ok(())
    }

    /// Every message that has arrived, as (process index, message).
    pub(super) fn messages(&mut self) -> Result<Vec<(usize, Msg)>, RealError> {
        let mut out = Vec::new();
        for (i, kid) in self.kids.iter_mut().enumerate() {
            let mut chunk = [0u8; 4096];
            loop {
                match kid.msgs.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => kid.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(RealError::Os {
                            what: "reading a child's messages",
                            source,
                        })
                    }
                }
            }
            let whole = kid.buf.len() / MSG_LEN * MSG_LEN;
            for bytes in kid.buf[..whole].chunks_exact(MSG_LEN) {
                let msg = Msg::decode(bytes).ok_or_else(|| RealError::Child {
                    name: kid.name.clone(),
                    message: "sent a malformed message".into(),
                })?;
                out.push((i, msg));
            }
            kid.buf.drain(..whole);
        }
        Ok(out)
    }

    /// Reaps the children that have ended since the last call: (index, wait status).
    pub(super) fn reap(&mut self) -> Vec<(usize, libc::c_int)> {
        let mut ended = Vec::new();
        for (i, kid) in self.kids.iter_mut().enumerate() {
            if kid.status.is_some() {
                continue;
            }
            let mut status = 0;
            // SAFETY: waits without blocking for our own child; `status` is a valid
            // out-pointer.
            let r = unsafe { libc::waitpid(kid.pid, &mut status, libc::WNOHANG) };
            if r == kid.pid {
                kid.status = Some(status);
                ended.push((i, status));
            }
        }
        ended
    }

    /// Kills (SIGKILL) and reaps every child still alive.
    pub(super) fn kill_all(&mut self) {
        for kid in &mut self.kids {
            if kid.status.is_some() {
                continue;
            }
            // SAFETY: signals our own child, not yet reaped, so its pid cannot have
            // been reused.
            unsafe { libc::kill(kid.pid, libc::SIGKILL) };
            let mut status = 0;
            loop {
                // SAFETY: waits for that child; `status` is a valid out-pointer.
                let r = unsafe { libc::waitpid(kid.pid, &mut status, 0) };
                if r != -1 || std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                    break;
                }
            }
            kid.status = Some(status);
        }
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        if std::process::id() == self.owner {
            self.kill_all();
        }
    }
}

/// `exited with status 1`, `killed by signal 9`.
pub(super) fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended with wait status {status}")
    }
}

/// Whether a wait status is a plain `exit(0)`.
pub(super) fn clean_exit(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RealError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 stores two new descriptors into the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(RealError::Os {
            what: "pipe2",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both descriptors were just created and belong to nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(f: &File) -> Result<(), RealError> {
    let fd = f.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(RealError::Os {
            what: "fcntl(O_NONBLOCK)",
            source: std::io::Error::last_os_error(),
        })
    }
}
