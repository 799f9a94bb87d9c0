//! Integration tests of ae-train (one binary).

mod configs;
mod training;
