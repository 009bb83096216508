//! Boundary test: the engine stays pure. Its manifest may not depend on an async runtime, the
//! wire format, storage, randomness or a clock, and its source may not reach for the clock, the
//! file system, the network or threads. Time and ids come in with each command; that is what
//! makes replay and snapshots exact (see replay.rs).

use std::path::{Path, PathBuf};

/// Crates the engine must never depend on, with why. A name matches exactly, or as a prefix
/// followed by `-` or `_` (so `tokio` also forbids `tokio-stream`, `rand` forbids `rand_core`).
const FORBIDDEN_CRATES: &[(&str, &str)] = &[
    (
        "tokio",
        "async runtime: the engine is called by one thread and never waits",
    ),
    ("async-std", "async runtime"),
    ("mio", "I/O event loop"),
    ("tonic", "gRPC belongs to the gateway"),
    ("prost", "protobuf belongs to the gateway"),
    ("rocksdb", "storage belongs to the gateway's journal"),
    ("librocksdb-sys", "storage belongs to the gateway's journal"),
    ("rand", "randomness would make replay diverge"),
    ("getrandom", "randomness would make replay diverge"),
    ("fastrand", "randomness would make replay diverge"),
    ("oorandom", "randomness would make replay diverge"),
    (
        "uuid",
        "random ids would make replay diverge; ids come in with commands",
    ),
    ("chrono", "a clock: time comes in with each command"),
    ("time", "a clock: time comes in with each command"),
    ("quanta", "a clock"),
    ("coarsetime", "a clock"),
    ("minstant", "a clock"),
    ("instant", "a clock"),
    ("web-time", "a clock"),
];

/// Paths and types the engine's source must not name, with why.
const FORBIDDEN_SOURCE: &[(&str, &str)] = &[
    ("std::time", "the clock: time comes in with each command"),
    ("SystemTime", "the wall clock"),
    ("Instant", "the monotonic clock"),
    ("std::fs", "file I/O belongs to the gateway's journal"),
    ("std::net", "network I/O belongs to the gateway"),
    ("std::thread", "the engine runs on its caller's thread"),
    ("std::process", "the engine never spawns or exits"),
    (
        "std::env",
        "configuration arrives in MarketConfig, not the environment",
    ),
    ("rand::", "randomness would make replay diverge"),
];

/// Modules that, imported through a `std::{...}` group, break the same rules.
const FORBIDDEN_STD_MODULES: &[&str] = &["time", "fs", "net", "thread", "process", "env"];

/// The engine crate's directory: as `cargo test` names it when running (a test binary built
/// from another checkout into a shared target directory would otherwise read that checkout).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The crate names a manifest depends on outside `[dev-dependencies]`, with the section each
/// appears in. Understands `name = ...`, `name.workspace = true`, `[dependencies.name]`,
/// renames through `package = "..."`, and target-specific and build dependency tables.
fn runtime_dependencies(manifest: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut section = String::new();
    for raw_line in manifest.lines() {
        let line = raw_line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            // `[dependencies.tokio]` names a crate in the header itself.
            if let Some((table, name)) = dependency_table_header(&section) {
                if is_runtime_table(table) {
                    found.push((name.to_string(), section.clone()));
                }
            }
            continue;
        }
        let in_table_header = dependency_table_header(&section);
        let runtime = match in_table_header {
            Some((table, _)) => is_runtime_table(table),
            None => is_runtime_table(&section),
        };
        if !runtime {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        if in_table_header.is_none() {
            // `name = ...` or `name.workspace = true`.
            let name = key
                .split('.')
                .next()
                .unwrap_or(key)
                .trim()
                .trim_matches('"');
            found.push((name.to_string(), section.clone()));
        }
        // A rename: the crate actually pulled in is `package`.
        if key == "package" {
            found.push((unquote(value), section.clone()));
        } else if let Some(package) = inline_package(value) {
            found.push((package, section.clone()));
        }
    }
    found
}

/// Splits `dependencies.tokio` (or `target.'cfg(unix)'.dependencies.tokio`) into the table
/// part and the crate name.
fn dependency_table_header(section: &str) -> Option<(&str, &str)> {
    for table in ["dependencies.", "build-dependencies.", "dev-dependencies."] {
        if let Some(index) = section.find(table) {
            let at_boundary = index == 0 || section[..index].ends_with('.');
            if at_boundary {
                let name = section[index + table.len()..].trim_matches('"');
                return Some((&section[..index + table.len() - 1], name));
            }
        }
    }
    None
}

/// `[dependencies]`, `[build-dependencies]` and their target-specific forms; not dev ones.
fn is_runtime_table(section: &str) -> bool {
    let last = section.rsplit('.').next().unwrap_or(section);
    last == "dependencies" || last == "build-dependencies"
}

fn inline_package(value: &str) -> Option<String> {
    let start = value.find("package")?;
    let rest = value[start + "package".len()..]
        .trim_start()
        .strip_prefix('=')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest.split('"').next()?.to_string())
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('"').to_string()
}

fn forbidden_crate(name: &str) -> Option<&'static str> {
    FORBIDDEN_CRATES.iter().find_map(|(forbidden, why)| {
        let matches = name == *forbidden
            || name
                .strip_prefix(forbidden)
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('_'));
        matches.then_some(*why)
    })
}

/// Every violation in a manifest, as "crate (section): why".
fn manifest_violations(manifest: &str) -> Vec<String> {
    runtime_dependencies(manifest)
        .into_iter()
        .filter_map(|(name, section)| {
            forbidden_crate(&name).map(|why| format!("{name} in [{section}]: {why}"))
        })
        .collect()
}

/// Source with `//` comments removed, so that a comment may explain the rule it obeys.
fn without_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| line.find("//").map_or(line, |index| &line[..index]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Does `needle` occur in `haystack` as a whole word (not inside a longer identifier)?
fn contains_word(haystack: &str, needle: &str) -> bool {
    let bytes = haystack.as_bytes();
    haystack.match_indices(needle).any(|(start, _)| {
        let end = start + needle.len();
        let clear_before = start == 0
            || !is_identifier_byte(bytes[start - 1])
            || needle.starts_with(|c: char| !c.is_alphanumeric());
        let clear_after =
            end == bytes.len() || !is_identifier_byte(bytes[end]) || needle.ends_with(':');
        clear_before && clear_after
    })
}

/// Every violation in one source file, as "pattern: why".
fn source_violations(source: &str) -> Vec<String> {
    let code = without_comments(source);
    let mut violations: Vec<String> = FORBIDDEN_SOURCE
        .iter()
        .filter(|(pattern, _)| contains_word(&code, pattern))
        .map(|(pattern, why)| format!("{pattern}: {why}"))
        .collect();
    // `use std::{fs, time::Duration}` names the modules without the `std::` prefix.
    for (start, _) in code.match_indices("std::{") {
        let group = &code[start..];
        let group = &group[..group.find('}').map_or(group.len(), |end| end + 1)];
        for module in FORBIDDEN_STD_MODULES {
            if contains_word(group, module) {
                violations.push(format!("std::{module} (imported in a group)"));
            }
        }
    }
    violations
}

fn rust_files(directory: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("readable source directory") {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn manifest_has_no_runtime_clock_randomness_io_or_wire_dependencies() {
    let path = manifest_dir().join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path).expect("engine manifest");
    let dependencies = runtime_dependencies(&manifest);
    // The reader must have found the engine's real dependencies, or it checked nothing.
    assert!(
        dependencies.iter().any(|(name, _)| name == "serde"),
        "no dependencies read from {}",
        path.display()
    );
    let violations = manifest_violations(&manifest);
    assert!(
        violations.is_empty(),
        "{} depends on what the engine must not:\n{}",
        path.display(),
        violations.join("\n")
    );
}

#[test]
fn source_never_touches_the_clock_files_network_threads_or_randomness() {
    let mut files = Vec::new();
    rust_files(&manifest_dir().join("src"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|file| file.ends_with("lib.rs")),
        "engine sources not found"
    );
    let mut report = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("readable source");
        for violation in source_violations(&source) {
            report.push(format!("{}: {violation}", file.display()));
        }
    }
    assert!(
        report.is_empty(),
        "the engine's source reaches outside itself:\n{}",
        report.join("\n")
    );
}

/// The checks themselves catch what they are meant to: otherwise the two tests above could pass
/// by reading nothing.
#[test]
fn the_checks_catch_each_way_of_naming_a_forbidden_crate() {
    let manifest = r#"
[package]
name = "pretend-engine"
time = "not a dependency: this is the package table"

[dependencies]
serde.workspace = true
tokio = { version = "1", features = ["rt"] }
clock = { package = "chrono", version = "0.4" }
rand_core.workspace = true

[dependencies.rocksdb]
version = "0.25"

[target.'cfg(unix)'.dependencies]
getrandom = "0.3"

[build-dependencies]
prost-build = "0.14"

[dev-dependencies]
proptest = "1"
rand = "0.9"
"#;
    let mut found: Vec<String> = manifest_violations(manifest)
        .iter()
        .map(|v| v.split(' ').next().unwrap().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "chrono",
            "getrandom",
            "prost-build",
            "rand_core",
            "rocksdb",
            "tokio"
        ]
    );
    assert_eq!(
        forbidden_crate("timely"),
        None,
        "a prefix alone is not a match"
    );
    assert_eq!(forbidden_crate("rust_decimal"), None);
}

#[test]
fn the_checks_catch_each_way_of_reaching_outside() {
    let caught = |source: &str| !source_violations(source).is_empty();
    assert!(caught("use std::time::Duration;"));
    assert!(caught("let now = SystemTime::now();"));
    assert!(caught("let start = Instant::now();"));
    assert!(caught("let text = std::fs::read_to_string(path);"));
    assert!(caught("use std::net::TcpStream;"));
    assert!(caught("std::thread::spawn(work);"));
    assert!(caught("let x: u64 = rand::random();"));
    assert!(caught("use std::{collections::HashMap, fs};"));
    // Comments may name what they avoid, and longer identifiers are not matches.
    assert!(!caught(
        "// no std::time here: the timestamp arrives with the command"
    ));
    assert!(!caught("struct Instantaneous; let reinstant = 1;"));
    assert!(!caught("use std::collections::VecDeque; use std::fmt;"));
}
