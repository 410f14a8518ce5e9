//! The protocol 1 frame forms of the messages that grew fields since (see
//! [`crate::wire`]): mirrors with exactly the fields protocol 1 had, in its
//! order, so bincode writes and reads the bytes a protocol 1 child knows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::messages::{AgentInit, Deliver, DeliveredEvent, Emit, Event, Message, Ready, Secrets};
use crate::operations::{InvokeError, InvokeResponse, InvokeResult};
use crate::wire::Extended;

#[derive(Serialize, Deserialize)]
pub struct ReadyV1 {
    protocol: Option<u32>,
}

impl Extended for Ready {
    type V1Ref<'a> = ReadyV1;
    type V1 = ReadyV1;

    fn extended(&self) -> bool {
        !self.features.is_empty()
    }

    fn v1(&self) -> ReadyV1 {
        ReadyV1 {
            protocol: self.protocol,
        }
    }

    fn from_v1(v: ReadyV1) -> Self {
        Ready {
            protocol: v.protocol,
            features: Vec::new(),
        }
    }
}

#[derive(Serialize)]
pub struct EmitV1Ref<'a> {
    seq: u64,
    event: EventV1Ref<'a>,
    dedupe_key: &'a Option<String>,
}

#[derive(Serialize)]
struct EventV1Ref<'a> {
    name: &'a String,
    message: &'a Option<Message>,
    properties: &'a BTreeMap<String, String>,
    instance_key: &'a Option<String>,
}

#[derive(Deserialize)]
pub struct EmitV1 {
    seq: u64,
    event: EventV1,
    dedupe_key: Option<String>,
}

#[derive(Deserialize)]
struct EventV1 {
    name: String,
    message: Option<Message>,
    properties: BTreeMap<String, String>,
    instance_key: Option<String>,
}

impl Extended for Emit {
    type V1Ref<'a> = EmitV1Ref<'a>;
    type V1 = EmitV1;

    fn extended(&self) -> bool {
        self.event.payload.is_some()
    }

    fn v1(&self) -> EmitV1Ref<'_> {
        let e = &self.event;
        EmitV1Ref {
            seq: self.seq,
            event: EventV1Ref {
                name: &e.name,
                message: &e.message,
                properties: &e.properties,
                instance_key: &e.instance_key,
            },
            dedupe_key: &self.dedupe_key,
        }
    }

    fn from_v1(v: EmitV1) -> Self {
        let e = v.event;
        Emit {
            seq: v.seq,
            event: Event {
                name: e.name,
                message: e.message,
                properties: e.properties,
                instance_key: e.instance_key,
                payload: None,
            },
            dedupe_key: v.dedupe_key,
        }
    }
}

#[derive(Serialize)]
pub struct DeliverV1Ref<'a> {
    id: &'a String,
    attempt: u32,
    event: DeliveredV1Ref<'a>,
}

#[derive(Serialize)]
struct DeliveredV1Ref<'a> {
    id: &'a String,
    connection: &'a String,
    connector: &'a String,
    name: &'a String,
    message: &'a Option<Message>,
    properties: &'a BTreeMap<String, String>,
    instance_key: &'a String,
    received_at: &'a String,
}

#[derive(Deserialize)]
pub struct DeliverV1 {
    id: String,
    attempt: u32,
    event: DeliveredV1,
}

#[derive(Deserialize)]
struct DeliveredV1 {
    id: String,
    connection: String,
    connector: String,
    name: String,
    message: Option<Message>,
    properties: BTreeMap<String, String>,
    instance_key: String,
    received_at: String,
}

impl Extended for Deliver {
    type V1Ref<'a> = DeliverV1Ref<'a>;
    type V1 = DeliverV1;

    fn extended(&self) -> bool {
        self.event.payload.is_some()
    }

    fn v1(&self) -> DeliverV1Ref<'_> {
        let e = &self.event;
        DeliverV1Ref {
            id: &self.id,
            attempt: self.attempt,
            event: DeliveredV1Ref {
                id: &e.id,
                connection: &e.connection,
                connector: &e.connector,
                name: &e.name,
                message: &e.message,
                properties: &e.properties,
                instance_key: &e.instance_key,
                received_at: &e.received_at,
            },
        }
    }

    fn from_v1(v: DeliverV1) -> Self {
        let e = v.event;
        Deliver {
            id: v.id,
            attempt: v.attempt,
            event: DeliveredEvent {
                id: e.id,
                connection: e.connection,
                connector: e.connector,
                name: e.name,
                message: e.message,
                properties: e.properties,
                instance_key: e.instance_key,
                received_at: e.received_at,
                payload: None,
            },
        }
    }
}

#[derive(Serialize)]
pub struct InvokeResultV1Ref<'a> {
    id: &'a String,
    ok: bool,
    response: &'a Option<InvokeResponse>,
    error: &'a Option<InvokeError>,
}

#[derive(Deserialize)]
pub struct InvokeResultV1 {
    id: String,
    ok: bool,
    response: Option<InvokeResponse>,
    error: Option<InvokeError>,
}

impl Extended for InvokeResult {
    type V1Ref<'a> = InvokeResultV1Ref<'a>;
    type V1 = InvokeResultV1;

    fn extended(&self) -> bool {
        self.job.is_some()
    }

    fn v1(&self) -> InvokeResultV1Ref<'_> {
        InvokeResultV1Ref {
            id: &self.id,
            ok: self.ok,
            response: &self.response,
            error: &self.error,
        }
    }

    fn from_v1(v: InvokeResultV1) -> Self {
        InvokeResult {
            id: v.id,
            ok: v.ok,
            response: v.response,
            error: v.error,
            job: None,
        }
    }
}

#[derive(Serialize)]
pub struct AgentInitV1Ref<'a> {
    protocol: u32,
    agent: &'a String,
    instance_key: &'a String,
    swarm: &'a String,
    state_dir: &'a String,
}

#[derive(Deserialize)]
pub struct AgentInitV1 {
    protocol: u32,
    agent: String,
    instance_key: String,
    swarm: String,
    state_dir: String,
}

impl Extended for AgentInit {
    type V1Ref<'a> = AgentInitV1Ref<'a>;
    type V1 = AgentInitV1;

    fn extended(&self) -> bool {
        !self.secrets.is_empty()
    }

    fn v1(&self) -> AgentInitV1Ref<'_> {
        AgentInitV1Ref {
            protocol: self.protocol,
            agent: &self.agent,
            instance_key: &self.instance_key,
            swarm: &self.swarm,
            state_dir: &self.state_dir,
        }
    }

    fn from_v1(v: AgentInitV1) -> Self {
        AgentInit {
            protocol: v.protocol,
            agent: v.agent,
            instance_key: v.instance_key,
            swarm: v.swarm,
            state_dir: v.state_dir,
            secrets: Secrets::default(),
        }
    }
}
