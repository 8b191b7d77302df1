//! Registration tokens, runner credentials, and reports fenced by the assigned runner.

use std::collections::BTreeMap;

use chrono::Duration;
use rivet_core::{JobState, StageState};
use rivet_orchestrator::domain::identity::hash_secret;
use rivet_orchestrator::domain::store::{
    Finish, NewRegistrationToken, Redemption, RunnerCredential, RunnerRecord, StageReport, Store,
};
use rivet_orchestrator::storage::SeaStore;
use uuid::Uuid;

use crate::support::{self, RUNNER, backends, claim, labels, lines, now, pipeline};

backends! {
    a_token_counts_its_uses_atomically_and_expires,
    credentials_are_stored_hashed_and_revoked_once,
    a_runner_cannot_report_on_a_job_assigned_to_another,
}

fn token(uses: Option<u32>, expires_in: Option<Duration>) -> NewRegistrationToken {
    NewRegistrationToken {
        id: Uuid::new_v4(),
        secret_hash: hash_secret("s3cret"),
        labels: labels(&[("pool", "ci")]),
        uses,
        expires_at: expires_in.map(|d| now() + d),
    }
}

async fn a_token_counts_its_uses_atomically_and_expires(store: &SeaStore) {
    let granted = Redemption::Granted(labels(&[("pool", "ci")]));
    let limited = token(Some(2), None);
    store.create_registration_token(&limited).await.unwrap();
    let secret = hash_secret("s3cret");
    assert_eq!(
        store.redeem_registration_token(limited.id, &hash_secret("wrong"), now()).await.unwrap(),
        Redemption::Unknown
    );
    assert_eq!(store.redeem_registration_token(Uuid::new_v4(), &secret, now()).await.unwrap(), Redemption::Unknown);
    // Racing redemptions: exactly two of five get in.
    let attempts = (0..5).map(|_| {
        let store = store.clone();
        let secret = secret.clone();
        tokio::spawn(async move { store.redeem_registration_token(limited.id, &secret, now()).await.unwrap() })
    });
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == granted).count(), 2, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == Redemption::UsedUp).count(), 3, "{outcomes:?}");

    let expiring = token(None, Some(Duration::minutes(5)));
    store.create_registration_token(&expiring).await.unwrap();
    assert_eq!(store.redeem_registration_token(expiring.id, &secret, now()).await.unwrap(), granted);
    let later = now() + Duration::minutes(6);
    let expires_at = expiring.expires_at.unwrap();
    assert_eq!(
        store.redeem_registration_token(expiring.id, &secret, later).await.unwrap(),
        Redemption::Expired(expires_at)
    );
    // Unlimited and unexpiring.
    let open = token(None, None);
    store.create_registration_token(&open).await.unwrap();
    for _ in 0..3 {
        assert_eq!(store.redeem_registration_token(open.id, &secret, later).await.unwrap(), granted);
    }
}

async fn credentials_are_stored_hashed_and_revoked_once(store: &SeaStore) {
    let id = Uuid::new_v4();
    let at = now();
    let runner = RunnerRecord {
        id,
        name: "new".to_owned(),
        labels: labels(&[("os", "linux")]),
        capacity: 0,
        version: "0.1.0".to_owned(),
        last_seen: at,
    };
    let credential = RunnerCredential {
        runner_id: id,
        secret_hash: hash_secret("secret"),
        labels: labels(&[("os", "linux")]),
        registered_at: at,
        revoked_at: None,
    };
    assert_eq!(store.runner_credential(id).await.unwrap(), None);
    store.register_runner(&runner, &credential).await.unwrap();
    assert_eq!(store.runner_credential(id).await.unwrap(), Some(credential.clone()));
    assert_eq!(store.runners().await.unwrap(), vec![runner]);
    // A second registration under the same id is refused by the database.
    assert!(
        store
            .register_runner(
                &RunnerRecord { name: "dup".into(), ..store.runners().await.unwrap()[0].clone() },
                &credential
            )
            .await
            .is_err()
    );

    assert!(!store.revoke_runner(Uuid::new_v4(), at).await.unwrap());
    assert!(store.revoke_runner(id, at).await.unwrap());
    assert!(store.revoke_runner(id, at + Duration::minutes(1)).await.unwrap());
    let revoked = store.runner_credential(id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at), "the first revocation time stays");
    assert_eq!(store.runner_credentials().await.unwrap(), vec![revoked]);
}

async fn a_runner_cannot_report_on_a_job_assigned_to_another(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    support::job(store, &pipeline).await;
    let (job, _) = claim(store, &[]).await;
    assert_eq!(job.runner_id, Some(RUNNER));
    let a = job.assignment();
    let intruder = Uuid::new_v4();
    let finish =
        Finish { state: JobState::Succeeded, failure_reason: None, message: String::new(), outputs: BTreeMap::new() };
    assert_eq!(store.mark_running(intruder, a).await.unwrap(), None);
    assert!(
        !store
            .record_stage(intruder, a, StageReport::new("build", StageState::Running, None, "", now()))
            .await
            .unwrap()
    );
    assert_eq!(store.append_logs(intruder, a, &lines(1, 3)).await.unwrap(), None);
    assert_eq!(store.finish_job(Some(intruder), a, finish.clone()).await.unwrap(), None);
    assert_eq!(store.requeue_job(Some(intruder), a, "mine").await.unwrap(), None);
    assert_eq!(store.job(job.id).await.unwrap(), Some(job.clone()), "nothing changed");
    assert_eq!(store.last_log_sequence(job.id).await.unwrap(), 0);
    // The assigned runner, and the orchestrator itself, still can.
    assert!(store.mark_running(RUNNER, a).await.unwrap().is_some());
    assert_eq!(store.append_logs(RUNNER, a, &lines(1, 3)).await.unwrap(), Some(3));
    assert!(store.finish_job(Some(RUNNER), a, finish).await.unwrap().is_some());
}
