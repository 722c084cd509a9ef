//! Which slice of the input this process works on: rank `R` of `W` tasks.
//!
//! Units are dealt round-robin (unit `i` to task `i % W`): deterministic,
//! disjoint, and the byte ranges of one large file land on different tasks.

/// Why the flags or the environment do not name a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("give --rank and --world-size together")]
    HalfGiven,
    #[error("{set} is set but {missing} is not; set both, or neither for a single task")]
    HalfSet { set: &'static str, missing: &'static str },
    #[error("{name}={value:?} is not a number")]
    NotANumber { name: String, value: String },
    #[error("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")]
    BelowArrayMin { id: usize, min: usize },
    #[error("world size must be at least 1 (from {from})")]
    EmptyWorld { from: &'static str },
    #[error("rank {rank} is not below world size {world} (from {from})")]
    RankOutside { rank: usize, world: usize, from: &'static str },
    #[error("world size {world} is more than {MAX_WORLD} tasks (from {from})")]
    WorldTooLarge { world: usize, from: &'static str },
}

/// More tasks than this are refused: each has a stats file, which a merge
/// opens one by one, and no run has units for that many.
pub const MAX_WORLD: usize = 1 << 20;

/// One task of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub rank: usize,
    pub world: usize,
}

impl Task {
    /// The only task of a run that is not shared.
    pub const ALONE: Task = Task { rank: 0, world: 1 };

    pub fn owns(&self, unit: usize) -> bool {
        unit % self.world == self.rank
    }

    /// `rank-00003-of-00008`: how the task's own files are named.
    pub fn name(&self) -> String {
        format!("rank-{:05}-of-{:05}", self.rank, self.world)
    }

    /// The rank and world size from flags, else from the environment of a
    /// launcher: a Slurm job array, Slurm tasks, then torchrun-style
    /// `RANK`/`WORLD_SIZE`; else a single task.
    pub fn resolve(
        rank: Option<usize>,
        world: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Task, TaskError> {
        let (rank, world, source) = match (rank, world) {
            (Some(r), Some(w)) => (r, w, "--rank/--world-size"),
            (None, None) => {
                let number = |name: &str| -> Result<Option<usize>, TaskError> {
                    env(name)
                        .map(|value| {
                            value
                                .trim()
                                .parse::<usize>()
                                .map_err(|_| TaskError::NotANumber { name: name.into(), value })
                        })
                        .transpose()
                };
                // The first launcher whose pair of variables is set names the
                // task; half a pair is refused, since every task would
                // otherwise run as task 0 of 1 and do all the work.
                const PAIRS: [(&str, &str, &str); 3] = [
                    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"),
                    ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_PROCID/SLURM_NTASKS"),
                    ("RANK", "WORLD_SIZE", "RANK/WORLD_SIZE"),
                ];
                let mut found = (0, 1, "");
                for (rank_var, world_var, source) in PAIRS {
                    match (number(rank_var)?, number(world_var)?) {
                        (Some(r), Some(w)) if rank_var == "SLURM_ARRAY_TASK_ID" => {
                            // Arrays may start at any index (--array=1-8).
                            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                            let rank = r.checked_sub(min).ok_or(TaskError::BelowArrayMin { id: r, min })?;
                            found = (rank, w, source);
                            break;
                        }
                        (Some(r), Some(w)) => {
                            found = (r, w, source);
                            break;
                        }
                        (Some(_), None) => return Err(TaskError::HalfSet { set: rank_var, missing: world_var }),
                        (None, Some(_)) => return Err(TaskError::HalfSet { set: world_var, missing: rank_var }),
                        (None, None) => {}
                    }
                }
                found
            }
            _ => return Err(TaskError::HalfGiven),
        };
        if world == 0 {
            return Err(TaskError::EmptyWorld { from: source });
        }
        if world > MAX_WORLD {
            return Err(TaskError::WorldTooLarge { world, from: source });
        }
        if rank >= world {
            return Err(TaskError::RankOutside { rank, world, from: source });
        }
        Ok(Task { rank, world })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(flags: (Option<usize>, Option<usize>), env: &[(&str, &str)]) -> Result<Task, TaskError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Task::resolve(flags.0, flags.1, |k| env.get(k).cloned())
    }

    #[test]
    fn flags_win_over_the_environment_and_slurm_arrays_win_over_tasks() {
        let env = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
        ];
        assert_eq!(resolve((Some(1), Some(3)), &env), Ok(Task { rank: 1, world: 3 }));
        assert_eq!(resolve((None, None), &env), Ok(Task { rank: 4, world: 8 }));
        assert_eq!(
            resolve((None, None), &[("SLURM_PROCID", "2"), ("SLURM_NTASKS", "4"), ("RANK", "1"), ("WORLD_SIZE", "2")]),
            Ok(Task { rank: 2, world: 4 })
        );
        assert_eq!(resolve((None, None), &[("RANK", "1"), ("WORLD_SIZE", "2")]), Ok(Task { rank: 1, world: 2 }));
        assert_eq!(resolve((None, None), &[]), Ok(Task { rank: 0, world: 1 }));
    }

    #[test]
    fn bad_slices_are_refused() {
        assert_eq!(
            resolve((Some(3), Some(3)), &[]).unwrap_err().to_string(),
            "rank 3 is not below world size 3 (from --rank/--world-size)"
        );
        assert_eq!(resolve((Some(1), None), &[]).unwrap_err().to_string(), "give --rank and --world-size together");
        assert_eq!(
            resolve((None, None), &[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err().to_string(),
            "RANK=\"x\" is not a number"
        );
    }

    /// See: issue 13, defect 12.
    #[test]
    fn r13_half_a_launchers_pair_is_refused() {
        assert_eq!(
            resolve((None, None), &[("RANK", "1")]).unwrap_err().to_string(),
            "RANK is set but WORLD_SIZE is not; set both, or neither for a single task"
        );
        assert_eq!(
            resolve((None, None), &[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]),
            Err(TaskError::HalfSet { set: "SLURM_ARRAY_TASK_ID", missing: "SLURM_ARRAY_TASK_COUNT" })
        );
        // A complete pair first wins over half of a later one.
        assert_eq!(
            resolve((None, None), &[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "2"), ("RANK", "5")]),
            Ok(Task { rank: 1, world: 2 })
        );
    }

    #[test]
    fn units_are_dealt_round_robin_and_disjointly() {
        let tasks: Vec<Task> = (0..3).map(|rank| Task { rank, world: 3 }).collect();
        for unit in 0..10 {
            assert_eq!(tasks.iter().filter(|t| t.owns(unit)).count(), 1);
        }
        assert!(tasks[1].owns(4));
    }
}
