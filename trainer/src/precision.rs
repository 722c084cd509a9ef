//! Mixed precision: bf16 or fp16 autocast over fp32 master weights, and
//! fp16's dynamic loss scaling.
//!
//! Autocast is switched through a small C++ shim (`csrc/shim.cpp`): tch's
//! own switch covers CUDA with fp16 only.

use tch::Device;

use crate::config::TrainingConfig;

extern "C" {
    fn curate_autocast_enter(device: i32, dtype: i32);
    fn curate_autocast_exit(device: i32);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Bf16,
    Fp16,
}

impl Precision {
    pub fn from_config(t: &TrainingConfig) -> Precision {
        match (t.bf16, t.fp16) {
            (true, _) => Precision::Bf16,
            (_, true) => Precision::Fp16,
            _ => Precision::Fp32,
        }
    }

    /// Runs `f` (a forward computation) under autocast. Backward passes run
    /// outside it, as PyTorch recommends: they follow the forward's dtypes.
    #[allow(unsafe_code)]
    pub fn autocast<T>(self, device: Device, f: impl FnOnce() -> T) -> T {
        if self == Precision::Fp32 {
            return f();
        }
        let dev = if device.is_cuda() { 1 } else { 0 };
        let dtype = if self == Precision::Fp16 { 1 } else { 0 };
        // SAFETY: the shim only flips libtorch's thread-local autocast state.
        unsafe { curate_autocast_enter(dev, dtype) };
        struct Exit(i32);
        impl Drop for Exit {
            #[allow(unsafe_code)]
            fn drop(&mut self) {
                // SAFETY: as above; runs even if `f` panics.
                unsafe { curate_autocast_exit(self.0) };
            }
        }
        let _exit = Exit(dev);
        f()
    }
}

/// fp16's dynamic loss scale, as `torch.amp.GradScaler` runs it: multiply
/// the loss so small gradients survive fp16, skip steps whose gradients
/// overflowed and halve the scale, double it after `growth_interval` clean
/// steps in a row.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub clean_steps: u64,
    pub growth_interval: u64,
}

impl Default for LossScaler {
    fn default() -> LossScaler {
        LossScaler { scale: 65536.0, clean_steps: 0, growth_interval: 2000 }
    }
}

impl LossScaler {
    /// Records whether this step's gradients were finite.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.clean_steps += 1;
            if self.clean_steps == self.growth_interval {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        } else {
            self.scale /= 2.0;
            self.clean_steps = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn autocast_computes_products_in_the_low_precision_and_ends_cleanly() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        for (p, kind) in
            [(Precision::Bf16, Kind::BFloat16), (Precision::Fp16, Kind::Half), (Precision::Fp32, Kind::Float)]
        {
            assert_eq!(p.autocast(Device::Cpu, || a.matmul(&a)).kind(), kind);
            assert_eq!(a.matmul(&a).kind(), Kind::Float, "autocast left on after {p:?}");
        }
    }

    #[test]
    fn the_scale_halves_on_overflow_and_grows_after_clean_steps() {
        let mut s = LossScaler { scale: 8.0, clean_steps: 0, growth_interval: 3 };
        s.update(false);
        assert_eq!(s.scale, 4.0);
        s.update(true);
        s.update(true);
        assert_eq!(s.scale, 4.0);
        s.update(true);
        assert_eq!((s.scale, s.clean_steps), (8.0, 0));
    }
}
