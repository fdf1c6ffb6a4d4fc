#!/usr/bin/perl
# Runs memsim's `replay autoballoon` input format through Proxmox VE's own
# allocator, PVE::AutoBalloon::compute_alg1 from pve-manager, so that memsim's
# Rust port can be compared against it. This file contains none of upstream's
# code; it loads the module from a path you provide:
#
#   # in a checkout of https://github.com/proxmox/pve-manager
#   git show HEAD:PVE/AutoBalloon.pm > /tmp/pve/AutoBalloon.pm
#   MEMSIM_PVE_AUTOBALLOON_PM=/tmp/pve/AutoBalloon.pm \
#       perl tests/tools/alg1_driver.pl < cases.jsonl > upstream.jsonl
#
# Only core modules are needed (AutoBalloon.pm itself uses none).
#
# Input: one case per line, {"goal":..,"maxchange":..,"vms":{..},"id":..}; blank
# lines are skipped; absent/null fields are passed as undef, except an absent or
# null maxchange, which means pvestatd's 100 MiB (as in memsim).
# Output: one line per case, {"id":..,"res":{vmid:target,..}} like memsim's
# replay, where each target is int() of upstream's value, exactly what pvestatd
# sends (an undef target becomes 0). If upstream dies (division by zero with
# negative shares) res is {} -- pvestatd then changes nothing -- and "died"
# carries the message. With an undefined maxmem upstream can also loop for a
# very long time or forever; after MEMSIM_ALG1_TIMEOUT seconds (default 5) the
# case is given up: res is {} and "timed_out" is set, meaning "unknown".
# The memsim test
# `tests/suite/autoballoon_differential.rs` drives this script.

use strict;
use warnings;

use JSON::PP;

my $module = $ENV{MEMSIM_PVE_AUTOBALLOON_PM}
    or die "set MEMSIM_PVE_AUTOBALLOON_PM to the path of PVE/AutoBalloon.pm\n";
require $module;

my $maxchange_default = 100 * 1024 * 1024;
my $timeout = $ENV{MEMSIM_ALG1_TIMEOUT} || 5;
my $json = JSON::PP->new->canonical;

while (my $line = <STDIN>) {
    next if $line !~ /\S/;
    my $case = $json->decode($line);
    my %answer;
    $answer{id} = $case->{id} if exists $case->{id};

    my $res = eval {
        # undef arithmetic warns under upstream's `use warnings`; that is expected
        local $SIG{__WARN__} = sub { };
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm $timeout;
        my $r = PVE::AutoBalloon::compute_alg1(
            $case->{vms}, $case->{goal}, $case->{maxchange} // $maxchange_default);
        alarm 0;
        $r;
    };
    alarm 0;
    if ($@ eq "timeout\n") {
        $answer{timed_out} = JSON::PP::true;
        $res = {};
    } elsif (my $err = $@) {
        $err =~ s/ at .*\z//s;
        $answer{died} = $err;
        $res = {};
    }
    # int() like pvestatd; it also makes a fresh number, so JSON::PP cannot mistake
    # a value upstream once interpolated into a string for a string.
    no warnings 'uninitialized';
    $answer{res} = { map { $_ => int($res->{$_}) } keys %$res };
    print $json->encode(\%answer), "\n";
}
