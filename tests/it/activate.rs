//! `/activate`: code entry, sign-in, consent and the done page, driven like a browser.
