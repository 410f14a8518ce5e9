//! `orchestrator status [TARGET] [--json]`.

use std::path::Path;

use orchestrator::control::{Request, request};
use orchestrator::exit_code;
use orchestrator::logs::StateDir;
use orchestrator::status::{
    ProcessKind, ProcessSnapshot, last_crash_record, render_detail, render_idle_agents,
    render_table,
};

/// Log lines searched for the last crash record.
const CRASH_SEARCH_LINES: usize = 5000;

pub fn main(state_dir: &Path, target: Option<&str>, json: bool) -> u8 {
    let state = StateDir::at(state_dir);
    let response = match request(&state.control_socket(), &Request::Status) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return exit_code::FAILURE;
        }
    };
    let Some(mut processes) = response.processes.filter(|_| response.ok) else {
        eprintln!(
            "orchestrator: {}",
            response
                .error
                .unwrap_or_else(|| "no status in the answer".into())
        );
        return exit_code::FAILURE;
    };
    let mut agents = response.agents.unwrap_or_default();
    if let Some(target) = target {
        processes.retain(|p| p.target == target || p.target.starts_with(&format!("{target}/")));
        let agent = target.strip_prefix("agent/").filter(|a| !a.contains('/'));
        agents.retain(|a| Some(a.name.as_str()) == agent);
        if processes.is_empty() && agents.is_empty() {
            eprintln!("orchestrator: no process matches '{target}'");
            return exit_code::FAILURE;
        }
    }
    if json {
        let body = serde_json::json!({ "processes": processes, "agents": agents });
        match serde_json::to_string_pretty(&body) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("orchestrator: {e}");
                return exit_code::FAILURE;
            }
        }
        return exit_code::OK;
    }
    match (target, processes.as_slice()) {
        (Some(_), [one]) => {
            let crash = crash_record(&state, one);
            print!("{}", render_detail(one, &crash));
        }
        _ => {
            if !processes.is_empty() {
                print!("{}", render_table(&processes));
            }
            print!("{}", render_idle_agents(&agents));
        }
    }
    exit_code::OK
}

/// The last crash record in the process's log, if it has one.
fn crash_record(state: &StateDir, p: &ProcessSnapshot) -> Vec<String> {
    let path = match (p.kind, &p.instance_key) {
        (ProcessKind::Agent, Some(key)) => state.agent_log(&p.name, key),
        _ => state.connection_log(&p.name),
    };
    orchestrator::logs::read::tail(&path, CRASH_SEARCH_LINES)
        .map(|lines| last_crash_record(&lines))
        .unwrap_or_default()
}
