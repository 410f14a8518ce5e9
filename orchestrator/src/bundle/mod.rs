//! The bundle: parse, validate, resolve.
//!
//! # Theory of operation
//!
//! This module owns the YAML bundle (README.md, Bundle reference) from text to the
//! validated [`Bundle`] the rest of the orchestrator runs, and the two
//! late look-ups the bundle only names: where an `entry` executable is, and
//! what a secret's value is.
//!
//! The life of a bundle: [`load`] reads one file, or every `*.yaml`/`*.yml`
//! in a directory, and hands the texts to [`parse`]. `parse` turns each
//! `---` document into a tree of spanned nodes (`node.rs`, serde-saphyr
//! under input budgets), then reads every document with a typed reader
//! (`read.rs`, one module per kind) that records each problem at its
//! file:line:column and keeps going. Once all documents are read,
//! `validate.rs` checks what spans documents — unique names, references,
//! rules against their Connector's events and their Swarm's agents — and
//! builds the [`Bundle`]. Any problem anywhere means `Err` with every
//! [`Diagnostic`], in document order; a bundle is used whole or not at all.
//!
//! Later, at start time, the caller uses [`check_entries`] / [`resolve_entry`]
//! to find executables and [`resolve_secrets`] to fetch secret values for a
//! Connection about to start.
//!
//! What it never does: `parse` touches no file, environment or clock (the
//! caller passes texts, and the look-ups take the environment and file
//! reader as arguments); nothing here logs, and no secret value is ever put
//! in a message or a `Debug` output of this module's errors.

mod agent;
mod common;
mod config_check;
mod connection;
mod connector;
mod diag;
mod document;
mod entry;
pub mod model;
mod node;
mod operations;
mod program;
mod read;
mod restart;
mod rules;
mod sandbox;
mod schema;
mod secret;
mod secrets;
mod swarm;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config_check::check_resolved;
pub use diag::Diagnostic;
pub use entry::{check_entries, resolve_entry};
pub use model::*;
pub use sandbox::{CAPABILITIES, capability_number};
pub use schema::{bundle_schema, bundle_schema_text};
pub use secrets::{resolve_agent_secrets, resolve_config, resolve_secrets};

/// One bundle file's text and the name it is reported under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The path as the user gave it (or as found in the bundle directory).
    pub name: String,
    /// The file's contents.
    pub text: String,
}

/// The `*.yaml` and `*.yml` files of a bundle directory, sorted.
fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The bytes a bundle is read from (every file of a directory, in order,
/// each after its name): what cluster nodes compare to run the same bundle.
pub fn source_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    if !std::fs::metadata(path)?.is_dir() {
        return std::fs::read(path);
    }
    let mut bytes = Vec::new();
    for file in yaml_files(path)? {
        if let Some(name) = file.file_name() {
            bytes.extend_from_slice(name.as_encoded_bytes());
            bytes.push(0);
        }
        bytes.extend_from_slice(&std::fs::read(&file)?);
        bytes.push(0);
    }
    Ok(bytes)
}

/// Reads the bundle at `path` (a file, or a directory of `*.yaml`/`*.yml`
/// files taken in name order) and parses it. Relative entries and secret
/// files resolve against the file's directory, or the directory itself.
pub fn load(path: &Path) -> Result<Bundle, Vec<Diagnostic>> {
    let io_error = |p: &Path, e: std::io::Error| {
        Diagnostic::global(format!("{}: cannot read: {e}", p.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| vec![io_error(path, e)])?;
    if !meta.is_dir() && !meta.is_file() {
        // A FIFO or a device would hold the reader (an `apply`) forever.
        let message = format!("{}: not a regular file or a directory", path.display());
        return Err(vec![Diagnostic::global(message)]);
    }
    let (root, files) = if meta.is_dir() {
        let files = yaml_files(path).map_err(|e| vec![io_error(path, e)])?;
        if files.is_empty() {
            let message = format!(
                "{}: no *.yaml or *.yml files in this directory",
                path.display()
            );
            return Err(vec![Diagnostic::global(message)]);
        }
        (path.to_path_buf(), files)
    } else {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (parent.to_path_buf(), vec![path.to_path_buf()])
    };
    let root = std::path::absolute(&root).map_err(|e| vec![io_error(&root, e)])?;

    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for file in files {
        let too_big =
            std::fs::metadata(&file).is_ok_and(|m| m.len() > node::MAX_SOURCE_BYTES as u64);
        if too_big {
            let message = format!(
                "{}: larger than the {} bytes allowed for a bundle file",
                file.display(),
                node::MAX_SOURCE_BYTES
            );
            errors.push(Diagnostic::global(message));
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push(Source {
                name: file.display().to_string(),
                text,
            }),
            Err(e) => errors.push(io_error(&file, e)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    parse(&root, &sources)
}

/// Parses and validates `sources` as one bundle whose relative paths
/// resolve against `root`. Pure: no file system, environment or clock.
pub fn parse(root: &Path, sources: &[Source]) -> Result<Bundle, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut docs = Vec::new();
    let mut specs = std::collections::BTreeMap::new();
    let mut all_parsed = true;
    for source in sources {
        let file: Arc<str> = source.name.as_str().into();
        match node::parse_documents(&file, &source.text) {
            Ok(nodes) => {
                specs.extend(nodes.iter().filter_map(spec_json));
                docs.extend(
                    nodes
                        .iter()
                        .filter_map(|n| document::read(&file, n, &mut out)),
                );
            }
            Err(d) => {
                out.push(d);
                all_parsed = false;
            }
        }
    }
    if all_parsed && docs.is_empty() && out.is_empty() {
        out.push(Diagnostic::global("the bundle has no resources"));
    }
    // With a file missing, every reference into it would be reported as
    // well, burying the one error that matters.
    let mut bundle = if all_parsed {
        validate::assemble(root, docs, &mut out)
    } else {
        Bundle::default()
    };
    bundle.specs = specs;
    if out.is_empty() {
        return Ok(bundle);
    }
    sort_in_document_order(&mut out, sources);
    Err(out)
}

/// `("Kind/name", spec as JSON)` of a document that has both (a valid
/// bundle's documents all do).
fn spec_json(doc: &node::SNode) -> Option<(String, serde_json::Value)> {
    let node::Node::Map(pairs) = &doc.value else {
        return None;
    };
    let get = |map: &[(node::SNode, node::SNode)], key: &str| {
        map.iter()
            .find(|(k, _)| k.value == node::Node::Str(key.into()))
            .map(|(_, v)| v.value.clone())
    };
    let (Some(node::Node::Str(kind)), Some(node::Node::Map(meta))) =
        (get(pairs, "kind"), get(pairs, "metadata"))
    else {
        return None;
    };
    let Some(node::Node::Str(name)) = get(&meta, "name") else {
        return None;
    };
    let spec = get(pairs, "spec")?.to_json().ok()?;
    Some((format!("{kind}/{name}"), spec))
}

/// Source order first (not file-name order), then line and column; the
/// ones without a place last. Stable, so same-place problems keep the order found.
fn sort_in_document_order(out: &mut [Diagnostic], sources: &[Source]) {
    let rank = |d: &Diagnostic| match &d.place {
        Some(p) => (
            sources
                .iter()
                .position(|s| *s.name == *p.file)
                .unwrap_or(usize::MAX - 1),
            p.line,
            p.column,
        ),
        None => (usize::MAX, 0, 0),
    };
    out.sort_by_key(rank);
}
