//! This process's peak resident memory, for the line a Slurm task's log
//! ends with: what `--mem` must cover.

/// Peak resident memory in bytes (the kernel's VmHWM), or `None` where
/// `/proc` does not say.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().strip_suffix("kB")?.trim();
    kb.parse::<u64>().ok().map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peak_is_at_least_what_was_touched() {
        let touched = vec![1u8; 64 << 20];
        let peak = super::peak_rss_bytes().expect("Linux has /proc/self/status");
        assert!(peak >= 64 << 20, "{peak}");
        drop(touched);
    }
}
