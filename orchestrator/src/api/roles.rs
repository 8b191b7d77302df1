//! The role table: what every gRPC method needs, in one place.
//!
//! `api::guard` looks every call up here before it reaches a service. A method that is not
//! in the table is refused with `PERMISSION_DENIED`, whoever calls, so a new RPC is closed
//! until someone decides who may call it; a unit test fails while any method of the
//! served descriptor sets lacks an entry, or an entry names no method.

use crate::domain::tokens::Role;

/// What a method needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health checks (load balancers, Kubernetes probes) and reflection (the API's
    /// schema, which is public anyway).
    Public,
    /// A runner credential (or, for `RegisterRunner`, a registration token), which the
    /// service checks itself: runners are not users.
    RunnerCredential,
    /// An API token (or bootstrap token) with at least this role.
    Role(Role),
}

use Need::{Public, Role as R, RunnerCredential};
use Role::{Admin, Operator, Viewer};

/// Every method served, by gRPC path, with what it needs.
pub const ROLE_TABLE: &[(&str, Need)] = &[
    ("/rivet.v1.PipelineService/CreatePipeline", R(Admin)),
    ("/rivet.v1.PipelineService/ValidatePipeline", R(Viewer)),
    ("/rivet.v1.PipelineService/GetPipeline", R(Viewer)),
    ("/rivet.v1.PipelineService/ListPipelines", R(Viewer)),
    ("/rivet.v1.PipelineService/DeletePipeline", R(Admin)),
    ("/rivet.v1.PluginService/PublishPlugin", R(Admin)),
    ("/rivet.v1.PluginService/GetPlugin", R(Viewer)),
    ("/rivet.v1.PluginService/ListPlugins", R(Viewer)),
    ("/rivet.v1.JobService/LaunchJob", R(Operator)),
    ("/rivet.v1.JobService/GetJob", R(Viewer)),
    ("/rivet.v1.JobService/ListJobs", R(Viewer)),
    ("/rivet.v1.JobService/CancelJob", R(Operator)),
    ("/rivet.v1.JobService/RerunJob", R(Operator)),
    ("/rivet.v1.JobService/WatchJob", R(Viewer)),
    ("/rivet.v1.LogService/StreamLogs", R(Viewer)),
    ("/rivet.v1.RunnerService/Connect", RunnerCredential),
    ("/rivet.v1.RunnerService/RegisterRunner", RunnerCredential),
    ("/rivet.v1.RunnerService/ListRunners", R(Viewer)),
    ("/rivet.v1.RunnerService/CreateRegistrationToken", R(Admin)),
    ("/rivet.v1.RunnerService/RevokeRunner", R(Admin)),
    ("/rivet.v1.TokenService/CreateToken", R(Admin)),
    ("/rivet.v1.TokenService/ListTokens", R(Admin)),
    ("/rivet.v1.TokenService/RevokeToken", R(Admin)),
    // Admins set and delete secrets. Operators may list them (names, scopes and times,
    // never values): they launch the jobs that use them and must see which are set.
    ("/rivet.v1.SecretService/SetSecret", R(Admin)),
    ("/rivet.v1.SecretService/ListSecrets", R(Operator)),
    ("/rivet.v1.SecretService/DeleteSecret", R(Admin)),
    // A schedule is a standing launch: operators, who may launch by hand, manage them.
    ("/rivet.v1.ScheduleService/CreateSchedule", R(Operator)),
    ("/rivet.v1.ScheduleService/GetSchedule", R(Viewer)),
    ("/rivet.v1.ScheduleService/ListSchedules", R(Viewer)),
    ("/rivet.v1.ScheduleService/DeleteSchedule", R(Operator)),
    ("/rivet.v1.ScheduleService/PauseSchedule", R(Operator)),
    ("/rivet.v1.ScheduleService/ResumeSchedule", R(Operator)),
    // Admins create and delete triggers (creating one makes a webhook secret that can
    // launch jobs); viewers see them, never with their secret.
    ("/rivet.v1.TriggerService/CreateTrigger", R(Admin)),
    ("/rivet.v1.TriggerService/GetTrigger", R(Viewer)),
    ("/rivet.v1.TriggerService/ListTriggers", R(Viewer)),
    ("/rivet.v1.TriggerService/DeleteTrigger", R(Admin)),
    ("/grpc.health.v1.Health/Check", Public),
    ("/grpc.health.v1.Health/Watch", Public),
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Public),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Public),
];

/// What the method at `path` needs; `None` when it is not in the table (refused).
pub fn need(path: &str) -> Option<Need> {
    ROLE_TABLE.iter().find(|(method, _)| *method == path).map(|(_, need)| *need)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::*;

    /// Every method path of the descriptor sets the server registers for reflection.
    fn served_methods() -> BTreeSet<String> {
        let sets = [
            rivet_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut methods = BTreeSet::new();
        for encoded in sets {
            let set = FileDescriptorSet::decode(encoded).expect("a valid descriptor set");
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        methods.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                    }
                }
            }
        }
        methods
    }

    #[test]
    fn every_served_method_has_exactly_one_entry() {
        let served = served_methods();
        assert!(served.contains("/rivet.v1.JobService/LaunchJob"), "the descriptor sets were read: {served:?}");
        let missing: Vec<&String> = served.iter().filter(|method| need(method).is_none()).collect();
        assert!(missing.is_empty(), "methods without a role in api::roles::ROLE_TABLE (they are refused): {missing:?}");
        let stale: Vec<&str> =
            ROLE_TABLE.iter().map(|(method, _)| *method).filter(|method| !served.contains(*method)).collect();
        assert!(stale.is_empty(), "ROLE_TABLE entries for methods that do not exist: {stale:?}");
        let unique: BTreeSet<&str> = ROLE_TABLE.iter().map(|(method, _)| *method).collect();
        assert_eq!(unique.len(), ROLE_TABLE.len(), "a method is listed twice");
    }

    #[test]
    fn unknown_methods_need_what_nobody_has() {
        assert_eq!(need("/rivet.v1.JobService/DropAllJobs"), None);
        assert_eq!(need("/rivet.v1.JobService/launchjob"), None);
        assert_eq!(need(""), None);
        assert_eq!(need("/rivet.v1.JobService/LaunchJob"), Some(Need::Role(Role::Operator)));
        assert_eq!(need("/rivet.v1.RunnerService/Connect"), Some(Need::RunnerCredential));
        assert_eq!(need("/rivet.v1.RunnerService/RegisterRunner"), Some(Need::RunnerCredential));
        assert_eq!(need("/rivet.v1.RunnerService/RevokeRunner"), Some(Need::Role(Role::Admin)));
    }
}
