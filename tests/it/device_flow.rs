//! The device flow end to end, driven by real OAuth clients and plain HTTP.
