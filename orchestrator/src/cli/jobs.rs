//! `orchestrator jobs list|get ID|cancel ID [--json]`: the jobs of async
//! operations, through the running orchestrator's control socket.

use std::path::Path;

use orchestrator::control::{Request, request};
use orchestrator::exit_code;
use orchestrator::logs::StateDir;
use orchestrator::operations::JobSummary;

pub fn main(state_dir: &Path, req: Request, json: bool) -> u8 {
    let state = StateDir::at(state_dir);
    let response = match request(&state.control_socket(), &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return exit_code::FAILURE;
        }
    };
    if !response.ok {
        eprintln!("orchestrator: {}", response.error.unwrap_or_default());
        return exit_code::FAILURE;
    }
    let jobs = response.jobs.unwrap_or_default();
    if json {
        let printed = match &req {
            Request::JobsList => serde_json::to_string_pretty(&jobs),
            _ => serde_json::to_string_pretty(&jobs.first()),
        };
        match printed {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("orchestrator: {e}");
                return exit_code::FAILURE;
            }
        }
        return exit_code::OK;
    }
    match &req {
        Request::JobsList if jobs.is_empty() => println!("no jobs"),
        Request::JobsList => {
            println!(
                "{:<36}  {:<9}  {:<24}  {:<20}  CREATED",
                "JOB", "STATE", "CONNECTION/OPERATION", "BY"
            );
            for j in &jobs {
                println!(
                    "{:<36}  {:<9}  {:<24}  {:<20}  {}",
                    j.job_id,
                    j.state,
                    format!("{}/{}", j.connection, j.operation),
                    by(j),
                    j.created_at
                );
            }
        }
        _ => {
            for j in &jobs {
                detail(j);
            }
        }
    }
    exit_code::OK
}

fn by(j: &JobSummary) -> String {
    if j.instance_key.is_empty() {
        j.agent.clone()
    } else {
        format!("{}/{}", j.agent, j.instance_key)
    }
}

fn detail(j: &JobSummary) {
    println!("job:        {}", j.job_id);
    println!("state:      {}", j.state);
    println!("operation:  {} of Connection/{}", j.operation, j.connection);
    println!("started by: {}", by(j));
    println!("created:    {}", j.created_at);
    println!("updated:    {}", j.updated_at);
    if let Some(r) = &j.response {
        println!(
            "response:   {}",
            serde_json::to_string(&r.data.0).unwrap_or_default()
        );
    }
    if let Some(e) = &j.error {
        println!("error:      {}: {}", e.class, e.message);
    }
}
