//! `curate-train train --nproc-per-node N`: starts N local ranks, as
//! `torchrun --standalone` does. The launcher hosts the store the ranks
//! meet at (so no port is guessed), forwards SIGINT, SIGTERM and SIGHUP to
//! them, and when one rank fails, stops the others and exits with that
//! rank's code (1 when a signal killed it), naming it.

use std::ffi::OsString;
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use super::group::AgentStore;

/// The last signal this process received, for the wait loop to forward.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// How long stopped ranks get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("starting the rendezvous store: {0}")]
    Store(String),
    #[error("starting rank {rank} ({program}): {source}")]
    Spawn { rank: usize, program: String, source: std::io::Error },
    #[error("waiting for the ranks: {0}")]
    Wait(std::io::Error),
}

/// `args`: this process's arguments with `--nproc-per-node` removed; each
/// rank runs them.
#[allow(unsafe_code)]
pub fn run(nproc: usize, args: &[OsString], timeout: Duration) -> Result<ExitCode, LaunchError> {
    let store = AgentStore::serve(timeout).map_err(LaunchError::Store)?;
    let program = std::env::current_exe().map_err(LaunchError::Wait)?;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores into an atomic. No SA_RESTART, so
        // a signal interrupts waitpid below and is forwarded at once.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = remember as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    let mut children: Vec<Option<Child>> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut command = Command::new(&program);
        command
            .args(args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("GROUP_RANK", "0")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", store.port.to_string())
            .env("TORCHELASTIC_USE_AGENT_STORE", "True")
            .env("TORCHELASTIC_RESTART_COUNT", "0");
        // SAFETY: prctl is async-signal-safe. A rank dies with its
        // launcher, so a killed launcher leaves no rank waiting.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        match command.spawn() {
            Ok(child) => children.push(Some(child)),
            Err(source) => {
                stop(&mut children);
                return Err(LaunchError::Spawn { rank, program: program.display().to_string(), source });
            }
        }
    }
    let pids: Vec<i32> = children.iter().map(|c| c.as_ref().map_or(0, |c| c.id() as i32)).collect();
    let mut failed: Option<(usize, String, u8)> = None;
    let forward = |children: &[Option<Child>]| {
        let signal = RECEIVED.swap(0, Ordering::SeqCst);
        if signal != 0 {
            for child in children.iter().flatten() {
                // SAFETY: sends a signal to a child not yet reaped.
                unsafe { libc::kill(child.id() as i32, signal) };
            }
        }
    };
    while children.iter().any(Option::is_some) {
        forward(&children);
        let mut status = 0;
        // SAFETY: waits for any child of this process.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(LaunchError::Wait(error));
        }
        let Some(rank) = pids.iter().position(|&p| p == pid) else { continue };
        children[rank] = None;
        let Some(outcome) = describe(status) else { continue };
        if failed.is_none() {
            let others: Vec<String> =
                children.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(r, _)| r.to_string()).collect();
            eprintln!(
                "curate-train: rank {rank} (pid {pid}) {outcome}{}",
                if others.is_empty() { String::new() } else { format!("; stopping rank(s) {}", others.join(", ")) }
            );
            // A rank's own exit code carries (2: refused before starting).
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) as u8 } else { 1 };
            failed = Some((rank, outcome, code));
            stop(&mut children);
        }
    }
    drop(store);
    Ok(match failed {
        None => ExitCode::SUCCESS,
        Some((rank, outcome, code)) => {
            eprintln!("error: the job failed: rank {rank} {outcome} first");
            ExitCode::from(code)
        }
    })
}

/// `None` for a clean exit; otherwise what happened, in words.
fn describe(status: i32) -> Option<String> {
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        return (code != 0).then(|| format!("exited with status {code}"));
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let name = match signal {
            libc::SIGKILL => "SIGKILL".to_string(),
            libc::SIGTERM => "SIGTERM".to_string(),
            libc::SIGABRT => "SIGABRT".to_string(),
            libc::SIGSEGV => "SIGSEGV".to_string(),
            libc::SIGINT => "SIGINT".to_string(),
            other => format!("signal {other}"),
        };
        return Some(format!("was killed by {name}"));
    }
    Some(format!("ended with wait status {status}"))
}

/// SIGTERM to every rank still running; SIGKILL to those (stopped or hung)
/// still there after the grace period. Reaps them all.
#[allow(unsafe_code)]
fn stop(children: &mut [Option<Child>]) {
    for child in children.iter().flatten() {
        // SAFETY: signals to a child not yet reaped. SIGCONT lets a stopped
        // rank act on the SIGTERM.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
            libc::kill(child.id() as i32, libc::SIGCONT);
        }
    }
    let deadline = Instant::now() + GRACE;
    for slot in children.iter_mut() {
        let Some(child) = slot.as_mut() else { continue };
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        *slot = None;
    }
}

/// This process's arguments without `--nproc-per-node N` (or `=N`).
pub fn rank_args() -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--nproc-per-node" {
            args.next();
            continue;
        }
        if arg.to_str().is_some_and(|a| a.starts_with("--nproc-per-node=")) {
            continue;
        }
        out.push(arg);
    }
    out
}
