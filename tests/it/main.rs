//! The integration tests, one binary: each module was its own test binary, and each linked the
//! whole server (about 500 MB unoptimised, fifteen times over). nextest still runs every test
//! in a process of its own, so a test's process-wide state (the session clock) stays its own.
#![cfg(feature = "ssr")]

mod common;

mod accounts;
mod api_keys;
mod binding;
mod cart;
mod cart_properties;
mod catalog;
mod checkout;
mod cluster;
mod connections;
mod floods;
mod hostile;
mod operability;
mod races;
mod reliability;
mod security_log;
mod session_api;
mod session_events;
mod sessions;
mod sessions_on_redis;
mod step_up;
