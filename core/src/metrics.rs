//! Counters of what the domain does, for `/metrics`: core only counts (atomics, no Prometheus),
//! the server exports them at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

/// A state change of a device grant; each happens once per grant (conditional updates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantEvent {
    Requested,
    Approved,
    Denied,
    Redeemed,
    /// Cut off by an admin while pending or approved.
    Revoked,
}

impl GrantEvent {
    pub const ALL: [Self; 5] = [
        Self::Requested,
        Self::Approved,
        Self::Denied,
        Self::Redeemed,
        Self::Revoked,
    ];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Redeemed => "redeemed",
            Self::Revoked => "revoked",
        }
    }
}

/// The answer to one poll of the token endpoint with a device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAnswer {
    Tokens,
    AuthorizationPending,
    SlowDown,
    AccessDenied,
    ExpiredToken,
    InvalidGrant,
    /// Anything else (a failure of ours).
    Other,
}

impl PollAnswer {
    pub const ALL: [Self; 7] = [
        Self::Tokens,
        Self::AuthorizationPending,
        Self::SlowDown,
        Self::AccessDenied,
        Self::ExpiredToken,
        Self::InvalidGrant,
        Self::Other,
    ];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::InvalidGrant => "invalid_grant",
            Self::Other => "other",
        }
    }
}

/// A request refused for being over a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Wrong user codes from one address at `/activate`.
    UserCodes,
    /// Failed sign-ins of one account or address (console or `/activate`).
    SignIns,
    /// Device authorization requests of one client and address.
    DeviceAuthorizations,
    /// Polls with unknown device codes from one address.
    DeviceCodes,
}

impl Throttled {
    pub const ALL: [Self; 4] = [
        Self::UserCodes,
        Self::SignIns,
        Self::DeviceAuthorizations,
        Self::DeviceCodes,
    ];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::UserCodes => "user_codes",
            Self::SignIns => "sign_ins",
            Self::DeviceAuthorizations => "device_authorizations",
            Self::DeviceCodes => "device_codes",
        }
    }
}

/// The counters of one process.
#[derive(Debug, Default)]
pub struct Counters {
    grants: [AtomicU64; GrantEvent::ALL.len()],
    polls: [AtomicU64; PollAnswer::ALL.len()],
    throttled: [AtomicU64; Throttled::ALL.len()],
}

impl Counters {
    pub fn grant(&self, event: GrantEvent) {
        self.grants[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn poll(&self, answer: PollAnswer) {
        self.polls[answer as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn throttled(&self, what: Throttled) {
        self.throttled[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    #[must_use]
    pub fn grants(&self) -> Vec<(&'static str, u64)> {
        GrantEvent::ALL
            .iter()
            .map(|e| (e.label(), self.grants[*e as usize].load(Ordering::Relaxed)))
            .collect()
    }

    #[must_use]
    pub fn polls(&self) -> Vec<(&'static str, u64)> {
        PollAnswer::ALL
            .iter()
            .map(|a| (a.label(), self.polls[*a as usize].load(Ordering::Relaxed)))
            .collect()
    }

    #[must_use]
    pub fn throttles(&self) -> Vec<(&'static str, u64)> {
        Throttled::ALL
            .iter()
            .map(|t| {
                (
                    t.label(),
                    self.throttled[*t as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_counts_under_its_own_label() {
        let c = Counters::default();
        c.grant(GrantEvent::Redeemed);
        c.poll(PollAnswer::SlowDown);
        c.poll(PollAnswer::Tokens);
        c.throttled(Throttled::SignIns);
        assert!(c.grants().contains(&("redeemed", 1)));
        assert!(c.grants().contains(&("requested", 0)));
        assert!(c.polls().contains(&("slow_down", 1)));
        assert!(c.polls().contains(&("tokens", 1)));
        assert!(c.throttles().contains(&("sign_ins", 1)));
    }
}
