//! Integration tests: the real `planexe` binary in temp directories.

mod harness;

mod build;
mod examples;
mod clean_touch_status;
mod man;
mod refusals;
mod running;
mod staleness;
