//! Integration tests: the real `planexe` binary in temp directories.

mod harness;
mod llm_server;
mod peak_rss;

mod architecture;
mod build;
mod certificate;
mod checks;
mod ci;
mod clean_touch_status;
mod edit;
mod examples;
mod failures;
mod fanout;
mod fuzz;
mod jobserver;
mod judge;
mod library;
mod llm;
mod llm_bounds;
mod llm_calls;
mod llm_extract;
mod makefile;
mod man;
mod mcp;
mod new_init;
mod observe;
mod refusals;
mod replay;
mod report;
mod resume;
mod running;
mod security;
mod staleness;
mod watch;
