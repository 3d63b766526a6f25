//! `sweep`: the researcher's entry point. Validate and submit sweep files, follow them, read their
//! results, or run a whole sweep on this machine with `sweep local`.

mod client;
mod commands;
mod exit;
mod plot;
mod progress;
mod table;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "sweep",
    version,
    about = "Run deep-learning sweeps across GPU nodes, or on this machine with `sweep local`.",
    after_help = format!(
        "Start here: `sweep local sweeps/studies/quickstart.toml` runs a whole sweep on this machine.\n\
         On a cluster: start `sweep-coordinator` once and `sweep-agent` on each node, then `sweep submit FILE`.\n\n{}",
        exit::HELP
    )
)]
struct Cli {
    /// The coordinator and this user's token and TLS settings (global flags).
    #[command(flatten)]
    remote: client::Remote,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a sweep file and show the trials it expands to.
    Validate {
        /// The sweep file (TOML; README: Sweep files).
        file: PathBuf,
        /// List every trial with its parameters.
        #[arg(long)]
        trials: bool,
    },
    /// Submit a sweep file to the coordinator and print the sweep id. Submitting again adds only
    /// trials that are new; a changed retry policy or trial definition is refused without --force.
    Submit {
        /// The sweep file (TOML); relative paths in it resolve against its folder, on this machine.
        file: PathBuf,
        /// Replace the retry policy and trial definition of an existing sweep of this name. Trials
        /// already stored keep their state, results and definition; trials the new definition
        /// makes (a changed workload, command or data gives new trial ids) are added beside them.
        #[arg(long)]
        force: bool,
    },
    /// Show sweeps, or one sweep's trials and the agents, or one trial's attempts: where each
    /// ran, how it ended, its epochs, and whether it resumed from a checkpoint.
    Status {
        /// A sweep's name: list its trials with their parameters [default: list every sweep].
        sweep: Option<String>,
        /// A trial id of that sweep (from `sweep status SWEEP`): show its attempts.
        trial: Option<String>,
        /// Print JSON: counts per state, trials with state and attempts, agents.
        #[arg(long)]
        json: bool,
    },
    /// Show live progress until the sweep is done.
    #[command(after_help = exit::HELP)]
    Watch {
        /// The sweep's name, as `sweep submit` printed it.
        sweep: String,
        /// Print one JSON object per change (as in `sweep status --json`: state, counts, total,
        /// done, retries), one per line, instead of the progress bar.
        #[arg(long)]
        json: bool,
    },
    /// Cancel every unfinished trial of a sweep; running ones stop at their next heartbeat.
    Cancel {
        /// The sweep's name, as `sweep status` lists it.
        sweep: String,
    },
    /// Queue a sweep's failed and cancelled trials again, each with a fresh attempt budget
    /// (retry.max_attempts and retry.max_lost count from zero). Their earlier attempts and metric
    /// rows stay in the record; a cancelled sweep becomes active again. Only the sweep's owner or
    /// an admin may.
    #[command(after_help = "Without --failed or --cancelled, both kinds are queued.\n\
                  Example: fix the training script, then `sweep retry my-sweep --failed && sweep watch my-sweep`.")]
    Retry {
        /// The sweep's name, as `sweep status` lists it.
        sweep: String,
        /// Queue the trials that failed (their attempts ran out, or the configuration was refused).
        #[arg(long)]
        failed: bool,
        /// Queue the trials that were cancelled.
        #[arg(long)]
        cancelled: bool,
    },
    /// Lease a paused sweep's pending trials again, once the cause is fixed (data, packages).
    /// A sweep is paused when its trials fail on every agent and none succeeds; `sweep status
    /// SWEEP` shows the reason and the error. If the sweep file itself was wrong, fix it and
    /// `sweep submit --force` it instead: that resumes the sweep too.
    Resume {
        /// The sweep's name, as `sweep status` lists it.
        sweep: String,
    },
    /// List agents heard from in the last 5 minutes: state (ok or quarantined), slots, GPUs,
    /// failures in a row and, for a quarantined agent, the evidence. `--unquarantine NAME` lets an
    /// agent out of quarantine.
    Agents {
        /// Let this agent (an id as listed, or the name agents registered with: all of them) out
        /// of quarantine once its node is fixed; it leases again at once, without a restart.
        /// Needs an `admin` token when the coordinator uses token files.
        #[arg(long, value_name = "NAME")]
        unquarantine: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One row per trial with its parameters and final metrics.
    #[command(
        after_help = "Where the rows come from: --results DIR (or SWEEP_RESULTS) reads DIR/<sweep>/trials.parquet;\n\
                  else a coordinator named with --coordinator (or SWEEP_COORDINATOR) is asked;\n\
                  else ./results/<sweep>/trials.parquet is read when it exists (what `sweep local` wrote here);\n\
                  else the coordinator at the default address."
    )]
    Results {
        /// The sweep's name, as `sweep status` lists it.
        sweep: String,
        /// Output format; `--json` is the same as `--format json`.
        #[arg(long, value_enum, default_value = "table")]
        format: table::Format,
        /// Print JSON, as every command's --json does.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Read `<DIR>/<sweep>/trials.parquet` instead of asking the coordinator.
        #[arg(long, env = "SWEEP_RESULTS")]
        results: Option<PathBuf>,
    },
    /// Slurm helpers: `sweep slurm agents --nodes 4 --gpus-per-node 8 --work-dir /shared/sweep`
    /// prints a batch script that runs one agent per node (add --submit to sbatch it).
    #[command(subcommand)]
    Slurm(commands::slurm::SlurmCommand),
    /// Draw a sweep's figures as PNG and SVG from its Parquet results and print their paths.
    /// Double-descent sweeps (workload mlp or double_descent, width varying) get test error vs
    /// width and a width × epoch heat map; other sweeps get each final metric against the first
    /// numeric parameter that varies, averaged over seeds and the rest. Sparsity sweeps get test
    /// accuracy against sparsity per pruning method, each layer's sparsity, and from --checkpoints
    /// the first layer's weights and the masks. `--x PARAM --y METRIC` picks the axes of one
    /// figure instead; `--curves` draws the metric per epoch.
    Plot {
        /// The sweep's name, as in `<results>/<SWEEP>/trials.parquet`.
        sweep: String,
        /// Folder that holds `<sweep>/trials.parquet` and `<sweep>/metrics/` (as `sweep local --results`).
        #[arg(long, env = "SWEEP_RESULTS", default_value = "results")]
        results: PathBuf,
        /// Folder for the figures [default: <results>/<sweep>/plots].
        #[arg(long, env = "SWEEP_PLOT_OUT")]
        out: Option<PathBuf>,
        #[command(flatten)]
        figures: commands::plot::FigureArgs,
        /// Draw one figure with this parameter on the x axis (with --curves: one line per value)
        /// instead of the figures chosen from the workload.
        #[arg(long, value_name = "PARAM")]
        x: Option<String>,
        /// The metric on the y axis of that figure [default: the first by name].
        #[arg(long, value_name = "METRIC")]
        y: Option<String>,
        /// Learning curves: the metric per epoch, from the metrics files, averaged over the trials
        /// of each line (one line per value of --x, or one over all trials).
        #[arg(long)]
        curves: bool,
    },
    /// Run a sweep on this machine: coordinator and agents in this process, state in `.sweep/`,
    /// results in `./results`. Shows progress and ends with the results table.
    #[cfg(feature = "embedded-agent")]
    #[command(after_help = exit::HELP)]
    Local(commands::local::LocalArgs),
    /// Serve the web dashboard of finished sweeps from their results files, read-only, with no
    /// coordinator: `sweep ui --results results`, then open the printed address. (A running
    /// coordinator serves the same dashboard, live, on its --http-listen address; `sweep local`
    /// prints its address.)
    #[cfg(feature = "embedded-agent")]
    Ui(commands::ui::UiArgs),
    /// Data sets for the built-in workloads: `sweep data synth --format cifar10 --out DIR`.
    #[cfg(feature = "embedded-agent")]
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Measure training throughput on this machine's device: `sweep bench gpu` compares PyTorch
    /// eager, tch eager and fused groups of preact-ResNet-18 side by side.
    #[cfg(feature = "embedded-agent")]
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Run one built-in trial in this process (started by an agent); several `--spec` train as
    /// one fused group.
    #[cfg(feature = "embedded-agent")]
    #[command(hide = true)]
    RunTrial {
        /// The trial's spec.json, written by the agent. Several: train them as one fused group
        /// (same double_descent or long_tail model and data; seed, learning rate, weight decay and
        /// label noise may differ), each record tagged with its trial id.
        #[arg(long, required = true)]
        spec: Vec<PathBuf>,
    },
}

/// Whether the user set the global flag `id` (on the command line or through its variable), at
/// whatever level of subcommand, rather than leaving its default.
fn given(matches: &ArgMatches, id: &str) -> bool {
    let here = matches.value_source(id).is_some_and(|s| s != ValueSource::DefaultValue);
    here || matches.subcommand().is_some_and(|(_, sub)| given(sub, id))
}

/// Printing into a closed pipe (`sweep status | head`) ends the command quietly, by SIGPIPE, as
/// other command-line tools end. SIGPIPE itself stays ignored, as Rust leaves it: `sweep local`
/// serves gRPC in this process, and a write to a connection its peer closed (a vectored write
/// cannot ask not to be signalled) must be an error on that connection, not the end of the sweep.
fn end_quietly_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            // SAFETY: restoring SIGPIPE's default disposition and raising it ends the process
            // as a write into a closed pipe ends any program that does not ignore the signal.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        default(info);
    }));
}

fn main() -> std::process::ExitCode {
    end_quietly_when_stdout_closes();
    let matches = Cli::command().get_matches();
    // `sweep results` reads ./results/ unless a coordinator was named (README: Results).
    let coordinator_given = given(&matches, "url");
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    #[cfg(feature = "embedded-agent")]
    if let Command::RunTrial { spec } = &cli.command {
        return std::process::ExitCode::from(sweep_agent::run_trial(spec).clamp(0, 255) as u8);
    }
    let runtime = tokio::runtime::Runtime::new().expect("start the async runtime");
    let outcome = runtime.block_on(async {
        // Inside the runtime: the OTLP exporter (when configured) runs on it. Dropped when the
        // command ends, it flushes the spans of this short call.
        let _telemetry = sweep_telemetry::init("sweep", "warn");
        dispatch(cli, coordinator_given).await
    });
    match outcome {
        Ok(ended) => ended.report(),
        Err(e) => {
            // Errors quote files, servers and trial output; show their control characters.
            eprintln!("error: {}", sweep_spec::text::escape_keeping_lines(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli, coordinator_given: bool) -> anyhow::Result<exit::Ended> {
    let remote = cli.remote;
    let done = match cli.command {
        Command::Validate { file, trials } => commands::validate::run(&file, trials),
        Command::Submit { file, force } => commands::submit::run(&remote, &file, force).await,
        Command::Status { sweep: Some(sweep), trial: Some(trial), json } => {
            commands::trial::run(&remote, &sweep, &trial, json).await
        }
        Command::Status { sweep, json, .. } => commands::status::run(&remote, sweep.as_deref(), json).await,
        Command::Watch { sweep, json } => return commands::watch::run(&remote, &sweep, json).await,
        Command::Cancel { sweep } => commands::cancel::run(&remote, &sweep).await,
        Command::Retry { sweep, failed, cancelled } => commands::retry::run(&remote, &sweep, failed, cancelled).await,
        Command::Results { sweep, format, json, results } => {
            let format = if json { table::Format::Json } else { format };
            commands::results::run(&remote, coordinator_given, &sweep, format, results.as_deref()).await
        }
        Command::Plot { sweep, results, out, figures, x, y, curves } => {
            let axes = plot::chosen::Axes { x, y, curves };
            commands::plot::run(&sweep, &results, out.as_deref(), &figures.checkpoints, &figures.font, &axes)
        }
        Command::Resume { sweep } => commands::resume::run(&remote, &sweep).await,
        Command::Agents { unquarantine, json } => commands::agents::run(&remote, unquarantine.as_deref(), json).await,
        Command::Slurm(cmd) => commands::slurm::run(cmd, &remote),
        #[cfg(feature = "embedded-agent")]
        Command::Local(args) => return commands::local::run(args).await,
        #[cfg(feature = "embedded-agent")]
        Command::Ui(args) => commands::ui::run(args).await,
        #[cfg(feature = "embedded-agent")]
        Command::Data(cmd) => commands::data::run(cmd),
        #[cfg(feature = "embedded-agent")]
        Command::Bench(cmd) => commands::bench::run(cmd),
        #[cfg(feature = "embedded-agent")]
        Command::RunTrial { .. } => unreachable!("handled before the runtime starts"),
    };
    done.map(|()| exit::Ended::Ok)
}
