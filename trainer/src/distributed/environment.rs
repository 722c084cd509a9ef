//! Which rank this process is, read from the launcher's environment:
//! torchrun's (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//! `MASTER_ADDR`, `MASTER_PORT`, `TORCHELASTIC_USE_AGENT_STORE`), which
//! `curate-train --nproc-per-node` sets too, or Slurm's (`SLURM_PROCID`,
//! `SLURM_NTASKS`, `SLURM_LOCALID`, the first host of `SLURM_JOB_NODELIST`).

/// One rank's place in the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub local_world: usize,
    /// Where the store is: rank 0's host, or the launcher's.
    pub master_addr: String,
    pub master_port: u16,
    /// The launcher hosts the store and every rank, rank 0 included,
    /// connects to it as a client.
    pub agent_store: bool,
    /// torchrun's restart count: store keys live under `/worker/attempt_N`
    /// so a restarted job does not read the keys of the one before.
    pub attempt: u32,
    /// "torchrun" or "slurm", for messages.
    pub source: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {message}")]
pub struct EnvError {
    pub name: String,
    pub value: String,
    pub message: String,
}

impl Launch {
    /// The job this process belongs to, or `None` when nothing launched it
    /// as a rank (a plain single-process run).
    pub fn from_env() -> Result<Option<Launch>, EnvError> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>, EnvError> {
        let number = |name: &str| -> Result<Option<usize>, EnvError> {
            match var(name) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| EnvError {
                    name: name.into(),
                    value: v.clone(),
                    message: "not a whole number".into(),
                }),
            }
        };
        let port = |default: u16| -> Result<u16, EnvError> {
            match var("MASTER_PORT") {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| EnvError {
                    name: "MASTER_PORT".into(),
                    value: v.clone(),
                    message: "not a port number".into(),
                }),
            }
        };
        let launch = if let (Some(rank), Some(world)) = (number("RANK")?, number("WORLD_SIZE")?) {
            let agent_store =
                var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            Launch {
                rank,
                world,
                local_rank: number("LOCAL_RANK")?.unwrap_or(rank),
                local_world: number("LOCAL_WORLD_SIZE")?.unwrap_or(world),
                master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
                master_port: port(29500)?,
                agent_store,
                attempt: number("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0) as u32,
                source: "torchrun",
            }
        } else if let (Some(rank), Some(world)) = (number("SLURM_PROCID")?, number("SLURM_NTASKS")?) {
            let nodes = var("SLURM_JOB_NODELIST").or_else(|| var("SLURM_NODELIST"));
            let master_addr = match var("MASTER_ADDR") {
                Some(addr) => addr,
                None => match nodes.as_deref().map(first_host) {
                    Some(Some(host)) => host,
                    Some(None) => {
                        return Err(EnvError {
                            name: "SLURM_JOB_NODELIST".into(),
                            value: nodes.unwrap_or_default(),
                            message: "names no host".into(),
                        })
                    }
                    None => "127.0.0.1".into(),
                },
            };
            // Jobs that share a node must not share a port.
            let job = number("SLURM_JOB_ID")?.unwrap_or(0);
            let local_world = var("SLURM_NTASKS_PER_NODE")
                .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()))
                .unwrap_or(world);
            Launch {
                rank,
                world,
                local_rank: number("SLURM_LOCALID")?.unwrap_or(0),
                local_world,
                master_addr,
                master_port: port(29500 + (job % 1000) as u16)?,
                agent_store: false,
                attempt: number("SLURM_RESTART_COUNT")?.unwrap_or(0) as u32,
                source: "slurm",
            }
        } else {
            return Ok(None);
        };
        if launch.world == 0 || launch.rank >= launch.world {
            return Err(EnvError {
                name: if launch.source == "slurm" { "SLURM_PROCID" } else { "RANK" }.into(),
                value: launch.rank.to_string(),
                message: format!("is not below the world size {}", launch.world),
            });
        }
        Ok(Some(launch))
    }
}

/// The first host of a Slurm node list: `node[03-05,9],gpu1` → `node03`.
pub fn first_host(nodelist: &str) -> Option<String> {
    let mut host = String::new();
    let mut chars = nodelist.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => break,
            '[' => {
                // The first entry of the range list, zero padding kept.
                let first: String = chars.by_ref().take_while(|c| c.is_ascii_digit()).collect();
                host.push_str(&first);
                break;
            }
            c => host.push(c),
        }
    }
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn launch(vars: &[(&str, &str)]) -> Result<Option<Launch>, EnvError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Launch::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn slurm_node_lists() {
        assert_eq!(first_host("node[03-05,9],gpu1").as_deref(), Some("node03"));
        assert_eq!(first_host("gpu-a[1,3]").as_deref(), Some("gpu-a1"));
        assert_eq!(first_host("host1,host2").as_deref(), Some("host1"));
        assert_eq!(first_host("solo").as_deref(), Some("solo"));
        assert_eq!(first_host(""), None);
    }

    #[test]
    fn torchrun_and_slurm_environments() {
        assert_eq!(launch(&[]).unwrap(), None);
        let t = launch(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "1234"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
            // torchrun inside an allocation: torchrun's variables win.
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((t.rank, t.world, t.local_rank, t.local_world), (3, 4, 1, 2));
        assert_eq!((t.master_addr.as_str(), t.master_port, t.agent_store, t.attempt), ("10.0.0.1", 1234, true, 2));
        let s = launch(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS_PER_NODE", "4(x2)"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
            ("SLURM_JOB_ID", "123456"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((s.rank, s.world, s.local_rank, s.local_world), (5, 8, 1, 4));
        assert_eq!((s.master_addr.as_str(), s.master_port, s.agent_store), ("gpu07", 29956, false));
        let e = launch(&[("RANK", "2"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("RANK=\"2\""), "{e}");
        let e = launch(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
    }
}
