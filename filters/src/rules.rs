//! Ordered threshold rules that serve both filtering and annotation.
//!
//! A filter walks its rules in datatrove's order through [`Rules::check`].
//! Filtering stops at the first rule that fires, so later measurements are
//! never computed; annotating computes every measurement as a signal and
//! still reports the first rule that fired. One walk for both modes keeps
//! their decisions identical by construction.

use crate::Verdict;

pub(crate) struct Rules<'s> {
    signals: Option<&'s mut Vec<f64>>,
    start: usize,
    expected: usize,
    fired: Option<&'static str>,
}

impl<'s> Rules<'s> {
    /// Filtering without `signals` (stop at the first rule that fires), or
    /// measuring: push `expected` signals onto `signals`, one per check.
    pub fn new(signals: Option<&'s mut Vec<f64>>, expected: usize) -> Rules<'s> {
        let start = signals.as_ref().map_or(0, |s| s.len());
        Rules { signals, start, expected, fired: None }
    }

    /// Whether every measurement is wanted (annotating); filtering may skip
    /// a measurement whose rule it can tell will not fire.
    pub fn measuring(&self) -> bool {
        self.signals.is_some()
    }

    /// Records one measurement and whether its rule fires. True when the
    /// caller should return [`Rules::verdict`] now.
    pub fn check(&mut self, value: f64, fires: bool, reason: &'static str) -> bool {
        if let Some(signals) = self.signals.as_mut() {
            signals.push(value);
        }
        if fires && self.fired.is_none() {
            self.fired = Some(reason);
        }
        self.signals.is_none() && self.fired.is_some()
    }

    /// The first rule that fired, else keep. Signals not measured (a
    /// document rejected before measuring, as `empty`) are NaN.
    pub fn verdict(self) -> Verdict {
        if let Some(signals) = self.signals {
            signals.resize(self.start + self.expected, f64::NAN);
        }
        self.fired.map_or(Verdict::Keep, Verdict::drop)
    }
}
