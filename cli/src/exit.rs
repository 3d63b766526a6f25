//! How `sweep` ends, as a process exit status scripts and CI can act on: 0 when every trial it
//! followed succeeded, 1 for an error or when any trial failed, 2 for a usage error (clap), 130
//! after Ctrl-C (the shell's convention for SIGINT).

use std::process::ExitCode;
use sweep_proto::v1 as pb;

/// What `--help` says about exit statuses.
pub const HELP: &str = "Exit status: 0 when the command worked and every trial it followed succeeded; \
1 on an error, or when `sweep local`/`sweep watch` saw a trial fail (the count is printed); \
2 for a usage error; 130 when interrupted with Ctrl-C.";

/// How a command that did its work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Ok,
    /// The sweep finished with `failed` of its `total` trials failed.
    TrialsFailed {
        sweep: String,
        failed: u32,
        total: u32,
    },
    /// Ctrl-C (SIGINT) stopped it.
    Interrupted,
}

impl Ended {
    /// `TrialsFailed` when the finished sweep has failed trials, else `Ok`.
    pub fn of_sweep(summary: &pb::SweepSummary) -> Ended {
        let failed = summary.counts.unwrap_or_default().failed;
        if failed > 0 {
            Ended::TrialsFailed { sweep: summary.sweep_id.clone(), failed, total: summary.total }
        } else {
            Ended::Ok
        }
    }

    /// Prints what a non-zero status means on stderr and returns the status.
    pub fn report(self) -> ExitCode {
        match self {
            Ended::Ok => ExitCode::SUCCESS,
            Ended::TrialsFailed { sweep, failed, total } => {
                eprintln!("{}: {failed} of {total} trials failed", sweep_spec::text::escape(&sweep));
                ExitCode::from(1)
            }
            Ended::Interrupted => ExitCode::from(130),
        }
    }
}
