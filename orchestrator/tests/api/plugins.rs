//! `PluginService` over real gRPC on both backends: publishing checks names, versions,
//! sizes and replaced content; versions are found by version, hash or as the latest; and a
//! pipeline version pins its plugins at creation, so its assignments carry the content it
//! was created with, whatever is published later.

use rivet_proto::v1::plugin_service_client::PluginServiceClient;
use rivet_proto::v1::{self as pb};
use tonic::Code;
use tonic::transport::Channel;

use crate::both_backends;
use crate::support::{Backend, Cluster, FakeRunner, channel};

async fn publish(
    plugins: &mut PluginServiceClient<Channel>,
    name: &str,
    version: &str,
    source: &str,
) -> Result<pb::Plugin, tonic::Status> {
    let request = pb::PublishPluginRequest { name: name.into(), version: version.into(), source: source.into() };
    Ok(plugins.publish_plugin(request).await?.into_inner().plugin.expect("a plugin"))
}

fn pipeline(name: &str, plugins: &str) -> String {
    format!(
        "return pipeline.define {{ name = {name:?}, plugins = {{ {plugins} }}, stages = {{ {{ name = \"s\", script = function() end }} }} }}"
    )
}

async fn publishing_and_finding(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut plugins = PluginServiceClient::new(channel(cluster.addr(0)).await);
    let one = publish(&mut plugins, "git", "1.0.0", "return { v = 1 }").await.unwrap();
    assert_eq!(one.sha256, rivet_core::plugin::sha256("return { v = 1 }"));
    assert_eq!(one.size_bytes, 16);
    let two = publish(&mut plugins, "git", "1.1.0", "return { v = 2 }").await.unwrap();

    for (name, version, source, field) in [
        ("g it", "1.0.0", "return {}", "name"),
        ("", "1.0.0", "return {}", "name"),
        ("git", "", "return {}", "version"),
        ("git", "1 0", "return {}", "version"),
        ("git", "2.0.0", "  ", "source"),
    ] {
        let err = publish(&mut plugins, name, version, source).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name} {version}: {err:?}");
        assert!(err.message().starts_with(&format!("{field}: ")), "{err:?}");
    }
    let big = "x".repeat(rivet_core::plugin::MAX_PLUGIN_BYTES + 1);
    let err = publish(&mut plugins, "git", "9.0.0", &big).await.unwrap_err();
    assert!(err.message().contains("plugins may be at most 1048576"), "{err:?}");
    let err = publish(&mut plugins, "git", "1.0.0", "return { v = 3 }").await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    let get = |version: &str| pb::GetPluginRequest { name: "git".into(), version: version.into() };
    let latest = plugins.get_plugin(get("")).await.unwrap().into_inner();
    assert_eq!((latest.plugin.unwrap().version, latest.source.as_str()), ("1.1.0".to_owned(), "return { v = 2 }"));
    let by_hash = plugins.get_plugin(get(&format!("sha256:{}", one.sha256))).await.unwrap().into_inner();
    assert_eq!(by_hash.plugin.unwrap().version, "1.0.0");
    let err = plugins.get_plugin(get("3.0.0")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("git@3.0.0"), "{err:?}");

    publish(&mut plugins, "notify", "0.1.0", "return {}").await.unwrap();
    let all = plugins.list_plugins(pb::ListPluginsRequest::default()).await.unwrap().into_inner().plugins;
    let listed: Vec<(String, String)> = all.iter().map(|p| (p.name.clone(), p.version.clone())).collect();
    let expected = [("git", "1.0.0"), ("git", "1.1.0"), ("notify", "0.1.0")].map(|(n, v)| (n.to_owned(), v.to_owned()));
    assert_eq!(listed, expected);
    let git = plugins.list_plugins(pb::ListPluginsRequest { name: "git".into() }).await.unwrap().into_inner();
    assert_eq!(git.plugins.iter().map(|p| p.sha256.clone()).collect::<Vec<_>>(), [one.sha256, two.sha256]);
    // Listed sizes are bytes, not characters, though the listing reads no source.
    let wide = "return { s = \"größe\" }";
    publish(&mut plugins, "wide", "1.0.0", wide).await.unwrap();
    let listed = plugins.list_plugins(pb::ListPluginsRequest { name: "wide".into() }).await.unwrap().into_inner();
    assert_eq!(listed.plugins.iter().map(|p| p.size_bytes).collect::<Vec<_>>(), [wide.len() as u64]);
}
both_backends!(publishing_and_finding_plugins, publishing_and_finding);

async fn bounded_versions(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut plugins = PluginServiceClient::new(channel(cluster.addr(0)).await);
    let cap = rivet_orchestrator::domain::plugins::MAX_VERSIONS_PER_PLUGIN;
    for i in 0..cap {
        publish(&mut plugins, "many", &format!("1.0.{i}"), "return {}").await.unwrap();
    }
    let err = publish(&mut plugins, "many", "2.0.0", "return {}").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(err.message(), format!("plugin many has {cap} versions, the most one plugin may have"));
    // Publishing a stored version again is no new version, and another plugin has room.
    publish(&mut plugins, "many", "1.0.0", "return {}").await.unwrap();
    publish(&mut plugins, "other", "1.0.0", "return {}").await.unwrap();
}
both_backends!(a_plugin_has_a_bounded_number_of_versions, bounded_versions);

async fn pins_travel_with_assignments(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    let mut plugins = PluginServiceClient::new(channel(cluster.addr(0)).await);
    let one = publish(&mut plugins, "git", "1.0.0", "return { v = 1 }").await.unwrap();
    publish(&mut plugins, "notify", "1.0.0", "return { n = 1 }").await.unwrap();
    api.create(&pipeline("pinned", r#""git", "notify@1.0.0""#)).await;
    publish(&mut plugins, "git", "2.0.0", "return { v = 2 }").await.unwrap();

    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    api.launch("pinned", &[]).await.unwrap();
    let assign = runner.assignment().await;
    let carried: Vec<(String, String, String, String)> = assign
        .plugins
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.sha256.clone(), p.source.clone()))
        .collect();
    assert_eq!(
        carried,
        [
            ("git".to_owned(), "1.0.0".to_owned(), one.sha256.clone(), "return { v = 1 }".to_owned()),
            (
                "notify".to_owned(),
                "1.0.0".to_owned(),
                rivet_core::plugin::sha256("return { n = 1 }"),
                "return { n = 1 }".to_owned()
            ),
        ]
    );

    // Unknown references are refused at creation, all of them named at once.
    let request = pb::CreatePipelineRequest {
        source: pipeline("broken", r#""git@7.0.0", "missing""#),
        file_name: "broken.lua".into(),
    };
    let err = api.pipelines.create_pipeline(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("git@7.0.0, missing"), "{err:?}");
}
both_backends!(pins_travel_with_assignments_to_runners, pins_travel_with_assignments);
