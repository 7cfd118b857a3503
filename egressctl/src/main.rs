//! `egressctl`: see what a node's egress gateway maps hold and why.
//!
//! Exit codes: 0 ok, 1 invalid input (or output that could not be written: standard output
//! or error full, a closed pipe, standard output closed), 2 usage, 3 kernel/map error.

#[cfg(feature = "bpf")]
mod bpf;
mod cli;
mod demo;
mod diagnostics;
mod diff;
mod doctor;
mod explain;
mod host;
mod input;
mod list;
mod pods;
mod validate;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// A failure that ends the command, with its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Invalid input (exit 1); the message may span several lines.
    Input(String),
    /// Input problems already printed (exit 1).
    Reported,
    /// A usage error clap could not catch (exit 2).
    Usage(String),
    /// The kernel or a map refused (exit 3).
    #[cfg(feature = "bpf")]
    Kernel(String),
}

impl From<egress_core::Error> for Failure {
    /// An input the core refused: exit 1, its message (every field error, one a line).
    fn from(e: egress_core::Error) -> Self {
        Failure::Input(e.to_string())
    }
}

/// The core's other errors, as the crate's error they convert into.
macro_rules! core_failure {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Self {
                egress_core::Error::from(e).into()
            }
        }
    )*};
}
core_failure!(
    egress_core::field::FieldError,
    egress_core::engine::PlanError,
    egress_core::engine::AckError
);

impl Failure {
    fn message(&self) -> Option<&str> {
        match self {
            Failure::Input(msg) | Failure::Usage(msg) => Some(msg),
            #[cfg(feature = "bpf")]
            Failure::Kernel(msg) => Some(msg),
            Failure::Reported => None,
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            Failure::Input(_) | Failure::Reported => 1,
            Failure::Usage(_) => 2,
            #[cfg(feature = "bpf")]
            Failure::Kernel(_) => 3,
        }
    }
}

/// The first error writing standard output, reported when the command ends by making it
/// fail (exit 1): a full disk, an I/O error, a closed pipe, a closed descriptor.
static WRITE_ERROR: std::sync::OnceLock<std::io::Error> = std::sync::OnceLock::new();

/// The first error writing standard error: the command goes on (standard output gets all
/// of its data) and exits 1 at its end.
static NOTE_ERROR: std::sync::OnceLock<std::io::Error> = std::sync::OnceLock::new();

/// Whether standard output was closed when the process started (`>&-`), as seen before
/// Rust's runtime opens `/dev/null` on closed standard descriptors (which makes every write
/// succeed and the output vanish): set by `record_closed_stdout`.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs before `main` and before the runtime's own start-up, from the ELF `.init_array`
/// (Linux; elsewhere a closed standard output is not told apart).
#[cfg(target_os = "linux")]
extern "C" fn record_closed_stdout() {
    // SAFETY: fcntl(F_GETFD) on a descriptor number reads no memory and changes nothing.
    let closed = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFD) } == -1
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
    STDOUT_CLOSED.store(closed, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(target_os = "linux")]
#[used]
// SAFETY: the section holds pointers to functions the loader calls before `main`; this one
// touches only an atomic and makes one syscall.
#[unsafe(link_section = ".init_array")]
static RECORD_CLOSED_STDOUT: extern "C" fn() = record_closed_stdout;

/// `eprintln!` of one line that may hold names from the input: control characters (newline
/// included) escaped, so that no input starts a line or reaches the terminal as an escape
/// sequence. A failed write (a full disk, a closed pipe) does not stop the command: it exits
/// 1 at its end.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::note_line(&format!($($arg)*))
    };
}
pub(crate) use note;

/// Writes one escaped line to standard error (see `note!`).
pub(crate) fn note_line(text: &str) {
    let mut line = egress_core::render::escape_cell(text).into_owned();
    line.push('\n');
    if let Err(e) = std::io::stderr().lock().write_all(line.as_bytes()) {
        let _ = NOTE_ERROR.set(e);
    }
}

/// Writes human output (tables, reports, explanations) to standard output, control
/// characters but newline and tab escaped (`render::escape_controls`); see `emit_data`.
pub(crate) fn emit(text: &str) {
    emit_data(&egress_core::render::escape_controls(text, true));
}

/// Writes machine output (JSON, completion scripts) as it is; a failure (a full disk, an
/// I/O error, a closed pipe) makes the command fail when it ends.
pub(crate) fn emit_data(text: &str) {
    emit_with(|out| out.write_all(text.as_bytes()));
}

/// Machine output written by `write` straight to standard output (through a buffer), for
/// outputs too large to hold as one string; errors as `emit_data`. Nothing more is written
/// after a failure.
pub(crate) fn emit_with(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
    if WRITE_ERROR.get().is_some() {
        return;
    }
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = WRITE_ERROR.set(std::io::Error::other("standard output is closed"));
        return;
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if let Err(e) = write(&mut out).and_then(|()| out.flush()) {
        let _ = WRITE_ERROR.set(e);
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    input::set_max_input(cli.max_input);
    let result = match cli.command {
        cli::Command::Demo => demo::run(),
        cli::Command::List(args) => list::run(&args),
        cli::Command::Pods(args) => pods::run(&args),
        cli::Command::Doctor(args) => doctor::run(&args),
        cli::Command::Validate(args) => validate::run(&args),
        cli::Command::Explain(args) => explain::run(&args),
        cli::Command::Diff(args) => diff::run(&args),
        cli::Command::Completions { shell } => {
            let mut command = <cli::Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "egressctl", &mut out);
            emit_data(&String::from_utf8_lossy(&out));
            Ok(())
        }
        #[cfg(feature = "bpf")]
        cli::Command::Apply(args) => bpf::apply(&args),
        #[cfg(feature = "bpf")]
        cli::Command::Dump(args) => bpf::dump(&args),
        #[cfg(feature = "bpf")]
        cli::Command::Verify(args) => bpf::verify(&args),
        #[cfg(not(feature = "bpf"))]
        cli::Command::Apply(_) | cli::Command::Dump(_) | cli::Command::Verify(_) => {
            Err(Failure::Usage(
                "apply, dump and verify program and read the kernel's maps: this egressctl was \
                 built without them; build it with `cargo build --release -p egressctl \
                 --features bpf` (needs libelf, zlib and pkg-config)"
                    .to_owned(),
            ))
        }
    };
    let result = match (result, WRITE_ERROR.get()) {
        // The reader closed the pipe (`egressctl list | head`): it left on purpose, so the
        // exit code alone says the output was cut.
        (Ok(()), Some(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Reported),
        (Ok(()), Some(e)) => Err(Failure::Input(format!("writing the output: {e}"))),
        (result, _) => result,
    };
    match result {
        Ok(()) if NOTE_ERROR.get().is_none() => ExitCode::SUCCESS,
        // Standard error could not be written: what it should have said is lost, and the
        // command says so by its exit code.
        Ok(()) => ExitCode::from(1),
        Err(failure) => {
            if let Some(msg) = failure.message() {
                for line in msg.lines() {
                    note!("egressctl: {line}");
                }
            }
            ExitCode::from(failure.exit_code())
        }
    }
}
