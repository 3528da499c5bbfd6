//! How guessable a workspace's user codes are (RFC 8628 §5.1): the size of the code space,
//! its entropy, and the chance that an attacker guessing within the throttling budget hits a
//! live code during its lifetime.

use crate::types::{CodeCharset, CodeLength};

/// Above this chance of a guessed live code, the console warns.
pub const WEAK_ABOVE: f64 = 1e-6;

/// The guessing odds of one workspace's code settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Odds {
    /// `charset.len() ^ length`.
    pub keyspace: u128,
    /// `log2(keyspace)`.
    pub bits: f64,
    /// Wrong guesses one address may make while a code lives.
    pub attempts: u64,
    /// `attempts / keyspace`: the chance that one of them is the live code.
    pub probability: f64,
}

impl Odds {
    /// The guessing chance exceeds [`WEAK_ABOVE`].
    #[must_use]
    pub fn is_weak(&self) -> bool {
        self.probability > WEAK_ABOVE
    }
}

/// The odds for codes of `charset` and `length` that live `lifetime` seconds, against one
/// address allowed `max_failures` wrong codes per `window` seconds.
///
/// One address and one live code are assumed: an attacker with many addresses multiplies the
/// attempts, and many live codes at once multiply the targets.
#[must_use]
pub fn odds(
    charset: CodeCharset,
    length: CodeLength,
    lifetime: i64,
    max_failures: u32,
    window: u64,
) -> Odds {
    let base = charset.alphabet().len() as u128;
    let keyspace = base.pow(u32::from(length.get()));
    let lifetime = u64::try_from(lifetime).unwrap_or(0);
    // A code alive across part of a window still meets that window's full budget.
    let windows = lifetime.div_ceil(window.max(1));
    let attempts = windows.saturating_mul(u64::from(max_failures));
    #[allow(clippy::cast_precision_loss)] // a ratio for display: f64 is precise enough
    let (keyspace_f, attempts_f) = (keyspace as f64, attempts as f64);
    Odds {
        keyspace,
        bits: keyspace_f.log2(),
        attempts,
        probability: (attempts_f / keyspace_f).min(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(n: i64) -> CodeLength {
        CodeLength::new(n).unwrap()
    }

    #[test]
    fn defaults_are_strong() {
        // 8 base20 characters, 600 s, 10 failures per 300 s.
        let o = odds(CodeCharset::Base20, len(8), 600, 10, 300);
        assert_eq!(o.keyspace, 25_600_000_000);
        assert!((o.bits - 34.575).abs() < 0.01, "{}", o.bits);
        assert_eq!(o.attempts, 20);
        assert!((o.probability - 20.0 / 25_600_000_000.0).abs() < 1e-15);
        assert!(!o.is_weak());
    }

    #[test]
    fn six_digits_with_a_long_lifetime_are_weak() {
        let o = odds(CodeCharset::Digits, len(6), 3600, 10, 300);
        assert_eq!(o.keyspace, 1_000_000);
        assert_eq!(o.attempts, 120);
        assert!((o.probability - 1.2e-4).abs() < 1e-12);
        assert!(o.is_weak());
    }

    #[test]
    fn partial_windows_count_whole_and_odds_stay_a_probability() {
        assert_eq!(
            odds(CodeCharset::Digits, len(10), 301, 10, 300).attempts,
            20
        );
        let o = odds(CodeCharset::Digits, len(6), 86_400, u32::MAX, 1);
        assert!(o.probability <= 1.0);
        assert_eq!(
            odds(CodeCharset::Base20, len(12), 600, 10, 300).keyspace,
            4_096_000_000_000_000
        );
    }
}
