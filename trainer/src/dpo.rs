//! Direct preference optimisation, as TRL's `DPOTrainer` computes it.
//!
//! A pair is a prompt with a chosen and a rejected completion (two
//! sequences of the shards, trained on their completions). Its log-ratio
//! `(π_c − ref_c) − (π_r − ref_r)` compares the policy's log-probabilities
//! of the completions with the reference model's: the model before
//! training (under LoRA, the base without its adapters), computed once in
//! a pass of their own ([`crate::train`] stores them in the run's folder).
//!
//! Losses, with `z = β · log-ratio`:
//! - `sigmoid` (DPO): `−log σ(z)·(1 − ε) − log σ(−z)·ε`, ε the label smoothing;
//! - `hinge` (SLiC): `max(0, 1 − z)`;
//! - `ipo`: `(log-ratio − 1/(2β))²`, on log-probabilities averaged per token.
//!
//! Rewards are `β (π − ref)` of each completion; the metrics are TRL's:
//! rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
//! logps/chosen, logps/rejected (means over pairs).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::model::IGNORE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DpoLoss {
    #[default]
    Sigmoid,
    Ipo,
    Hinge,
}

/// `[dpo]`: preference optimisation on shards of pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoConfig {
    #[serde(default = "d_beta")]
    pub beta: f64,
    #[serde(default)]
    pub loss: DpoLoss,
    /// The sigmoid loss's label smoothing (cDPO's ε).
    #[serde(default)]
    pub label_smoothing: f64,
}

fn d_beta() -> f64 {
    0.1
}

/// Sums over a batch's pairs; [`DpoStats::means`] gives the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DpoStats {
    pub pairs: f64,
    pub loss: f64,
    pub chosen_rewards: f64,
    pub rejected_rewards: f64,
    pub accuracies: f64,
    pub margins: f64,
    pub chosen_logps: f64,
    pub rejected_logps: f64,
}

impl DpoStats {
    pub fn add(&mut self, o: &DpoStats) {
        for (a, b) in self.fields_mut().into_iter().zip(o.fields()) {
            *a += b;
        }
    }

    fn fields(&self) -> [f64; 8] {
        [
            self.pairs,
            self.loss,
            self.chosen_rewards,
            self.rejected_rewards,
            self.accuracies,
            self.margins,
            self.chosen_logps,
            self.rejected_logps,
        ]
    }

    fn fields_mut(&mut self) -> [&mut f64; 8] {
        [
            &mut self.pairs,
            &mut self.loss,
            &mut self.chosen_rewards,
            &mut self.rejected_rewards,
            &mut self.accuracies,
            &mut self.margins,
            &mut self.chosen_logps,
            &mut self.rejected_logps,
        ]
    }

    pub fn to_vec(&self) -> Vec<f64> {
        self.fields().to_vec()
    }

    pub fn from_slice(v: &[f64]) -> DpoStats {
        let mut s = DpoStats::default();
        for (a, b) in s.fields_mut().into_iter().zip(v) {
            *a = *b;
        }
        s
    }

    /// TRL's metric names and their means over the pairs.
    pub fn means(&self, prefix: &str) -> serde_json::Map<String, serde_json::Value> {
        let n = self.pairs.max(1.0);
        [
            ("rewards/chosen", self.chosen_rewards),
            ("rewards/rejected", self.rejected_rewards),
            ("rewards/accuracies", self.accuracies),
            ("rewards/margins", self.margins),
            ("logps/chosen", self.chosen_logps),
            ("logps/rejected", self.rejected_logps),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), serde_json::json!(v / n)))
        .collect()
    }
}

/// Each row's summed log-probability of its targets (those not
/// [`IGNORE`]), and how many there are: `[N]` each, fp32.
pub fn sequence_logps(logits: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let logp = logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float);
    let kept = targets.ne(IGNORE);
    let picked = logp.gather(2, &targets.clamp_min(0).unsqueeze(2), false).squeeze_dim(2);
    let sums = (picked * kept.to_kind(Kind::Float)).sum_dim_intlist(1, false, Kind::Float);
    (sums, kept.sum_dim_intlist(1, false, Kind::Float))
}

/// The mean loss over a batch's pairs and its stats. `policy` and
/// `reference` are `[B, 2]` (chosen, rejected) summed log-probabilities,
/// `counts` their completions' token counts.
pub fn loss(c: &DpoConfig, policy: &Tensor, reference: &Tensor, counts: &Tensor) -> (Tensor, DpoStats) {
    let (policy, reference) = match c.loss {
        // IPO compares log-probabilities averaged per token.
        DpoLoss::Ipo => (policy / counts, reference / counts),
        _ => (policy.shallow_clone(), reference.shallow_clone()),
    };
    let ratios = &policy - &reference;
    let logits = ratios.select(1, 0) - ratios.select(1, 1);
    let losses = match c.loss {
        DpoLoss::Sigmoid => {
            let z = &logits * c.beta;
            -(z.log_sigmoid() * (1.0 - c.label_smoothing)) - (-z).log_sigmoid() * c.label_smoothing
        }
        DpoLoss::Hinge => (-(&logits * c.beta) + 1.0).relu(),
        DpoLoss::Ipo => (logits - 1.0 / (2.0 * c.beta)).square(),
    };
    let rewards = ratios.detach() * c.beta;
    let (chosen, rejected) = (rewards.select(1, 0), rewards.select(1, 1));
    let sum = |t: &Tensor| t.sum(Kind::Double).double_value(&[]);
    let stats = DpoStats {
        pairs: losses.size()[0] as f64,
        loss: sum(&losses.detach()),
        chosen_rewards: sum(&chosen),
        rejected_rewards: sum(&rejected),
        accuracies: sum(&chosen.gt_tensor(&rejected).to_kind(Kind::Float)),
        margins: sum(&(&chosen - &rejected)),
        chosen_logps: sum(&policy.detach().select(1, 0)),
        rejected_logps: sum(&policy.detach().select(1, 1)),
    };
    (losses.mean(Kind::Float), stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_losses_follow_trl_formulas() {
        let policy = Tensor::from_slice(&[-10.0f32, -12.0, -8.0, -7.0]).view([2, 2]);
        let reference = Tensor::from_slice(&[-11.0f32, -11.0, -8.0, -8.0]).view([2, 2]);
        let counts = Tensor::from_slice(&[2.0f32, 4.0, 1.0, 2.0]).view([2, 2]);
        let c = |loss, ls| DpoConfig { beta: 0.5, loss, label_smoothing: ls };
        // Log-ratios: pair 0: (1) - (-1) = 2; pair 1: 0 - 1 = -1.
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let (l, s) = loss(&c(DpoLoss::Sigmoid, 0.0), &policy, &reference, &counts);
        let expected = (-(sig(1.0)).ln() - (sig(-0.5)).ln()) / 2.0;
        assert!((l.double_value(&[]) - expected).abs() < 1e-6);
        assert_eq!((s.pairs, s.accuracies), (2.0, 1.0));
        // Rewards are β × each log-ratio: margins (0.5 × 2) and (0.5 × −1), summed.
        assert!((s.margins - 0.5).abs() < 1e-6);
        let (l, _) = loss(&c(DpoLoss::Sigmoid, 0.2), &policy, &reference, &counts);
        let smoothed =
            (-(sig(1.0)).ln() * 0.8 - (sig(-1.0)).ln() * 0.2 - (sig(-0.5)).ln() * 0.8 - (sig(0.5)).ln() * 0.2) / 2.0;
        assert!((l.double_value(&[]) - smoothed).abs() < 1e-6);
        let (l, _) = loss(&c(DpoLoss::Hinge, 0.0), &policy, &reference, &counts);
        assert!((l.double_value(&[]) - (0.0 + 1.5) / 2.0).abs() < 1e-6);
        // IPO per token: pair 0: (1/2) - (-1/4) = 0.75; pair 1: 0 - 0.5 = -0.5; target 1/(2β) = 1.
        let (l, _) = loss(&c(DpoLoss::Ipo, 0.0), &policy, &reference, &counts);
        assert!((l.double_value(&[]) - (0.0625 + 2.25) / 2.0).abs() < 1e-6);
    }
}
