use super::*;
use crate::runtime::health::checker::UNHEALTHY_EXIT;
use crate::runtime::health::Check;

fn unit(active: &str, sub: &str, restarts: u32) -> UnitStatus {
    UnitStatus {
        active: active.into(),
        sub: sub.into(),
        n_restarts: Some(restarts),
        main_status: None,
    }
}

fn at(secs: u64, u: UnitStatus) -> Observation {
    Observation {
        at: Duration::from_secs(secs),
        unit: u,
        health: None,
    }
}

fn health(status: HealthStatus, streak: u32, output: &str) -> Health {
    Health {
        status,
        failing_streak: streak,
        checks: u64::from(streak),
        last: Some(Check {
            at: 0,
            exit: Some(1),
            output: output.into(),
        }),
    }
}

/// Feeds `events` and returns every decision.
fn run(soak: &mut Soak, events: &[Observation]) -> Vec<Decision> {
    events.iter().map(|o| soak.observe(o)).collect()
}

#[test]
fn passes_once_active_holds_for_the_whole_soak() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, false);
    let d = run(
        &mut s,
        &[
            at(0, unit("activating", "start", 0)),
            at(1, unit("active", "running", 0)),
            at(6, unit("active", "running", 0)),
            at(11, unit("active", "running", 0)),
        ],
    );
    assert_eq!(
        d,
        [
            Decision::Wait,
            Decision::Wait,
            Decision::Wait,
            Decision::Passed
        ]
    );
}

#[test]
fn a_zero_soak_passes_at_the_first_active_observation() {
    let mut s = Soak::new(Duration::ZERO, START_BOUND, false);
    assert_eq!(
        s.observe(&at(0, unit("active", "running", 0))),
        Decision::Passed
    );
}

#[test]
fn an_exit_inside_the_soak_fails_with_its_status() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, false);
    let mut failed = unit("failed", "failed", 0);
    failed.main_status = Some(1);
    let d = run(
        &mut s,
        &[at(1, unit("active", "running", 0)), at(3, failed.clone())],
    );
    let want = Failure::Exited {
        after_secs: 3,
        status: Some(1),
        state: "failed/failed".into(),
    };
    assert_eq!(d[1], Decision::Failed(want.clone()));
    assert_eq!(want.to_string(), "exited 3 s after start (status 1)");
}

#[test]
fn waiting_to_be_restarted_is_an_exit() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, false);
    let d = s.observe(&at(2, unit("activating", "auto-restart", 0)));
    assert!(
        matches!(d, Decision::Failed(Failure::Exited { .. })),
        "{d:?}"
    );
}

#[test]
fn a_restart_systemd_made_fails_even_when_active_again() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, false);
    let mut back = unit("active", "running", 3);
    back.main_status = Some(2);
    let d = run(&mut s, &[at(0, unit("active", "running", 2)), at(4, back)]);
    assert_eq!(d[0], Decision::Wait);
    let Decision::Failed(f) = &d[1] else {
        panic!("{d:?}")
    };
    assert_eq!(
        f.to_string(),
        "exited and was restarted by systemd 4 s after start (status 2)"
    );
}

#[test]
fn becoming_inactive_resets_nothing_but_fails() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, false);
    let d = s.observe(&at(5, unit("inactive", "dead", 0)));
    let Decision::Failed(f) = d else {
        panic!("{d:?}")
    };
    assert_eq!(f.to_string(), "exited 5 s after start (unit inactive/dead)");
}

#[test]
fn activating_past_the_bound_times_out() {
    let mut s = Soak::new(Duration::from_secs(10), Duration::from_secs(5), false);
    let d = run(
        &mut s,
        &[
            at(0, unit("activating", "start", 0)),
            at(14, unit("activating", "start", 0)),
            at(15, unit("activating", "start", 0)),
        ],
    );
    assert_eq!(d[1], Decision::Wait);
    let Decision::Failed(f) = &d[2] else {
        panic!("{d:?}")
    };
    assert_eq!(
        f.to_string(),
        "not active 15 s after start (unit activating/start)"
    );
}

#[test]
fn with_a_check_the_soak_starts_when_healthy() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, true);
    let mut events = vec![at(1, unit("active", "running", 0))];
    let mut o = at(3, unit("active", "running", 0));
    o.health = Some(health(HealthStatus::Starting, 0, ""));
    events.push(o);
    for t in [5, 14, 15] {
        let mut o = at(t, unit("active", "running", 0));
        o.health = Some(health(HealthStatus::Healthy, 0, "ok"));
        events.push(o);
    }
    let d = run(&mut s, &events);
    assert_eq!(
        d,
        [
            Decision::Wait,
            Decision::Wait,
            Decision::Wait,
            Decision::Wait,
            Decision::Passed
        ]
    );
}

#[test]
fn an_unhealthy_report_fails_with_the_checks_output() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, true);
    let mut o = at(4, unit("active", "running", 0));
    o.health = Some(health(HealthStatus::Unhealthy, 3, "curl: (7) refused\n"));
    let Decision::Failed(f) = s.observe(&o) else {
        panic!("not failed")
    };
    assert_eq!(
        f.to_string(),
        "health check failed 3 times: curl: (7) refused"
    );
}

#[test]
fn an_exit_after_an_unhealthy_report_names_the_check() {
    // berth-run stops an unhealthy container and its state file goes
    // with it: the last report seen still names the reason.
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, true);
    let mut o = at(4, unit("active", "running", 0));
    o.health = Some(health(HealthStatus::Unhealthy, 3, "down"));
    let _ = s.observe(&o);
    let d = s.observe(&at(5, unit("failed", "failed", 0)));
    assert!(
        matches!(d, Decision::Failed(Failure::Unhealthy { streak: 3, .. })),
        "{d:?}"
    );
}

#[test]
fn a_dip_out_of_active_restarts_the_soak() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, true);
    let healthy = |t| {
        let mut o = at(t, unit("active", "running", 0));
        o.health = Some(health(HealthStatus::Healthy, 0, ""));
        o
    };
    let mut starting = at(8, unit("active", "running", 0));
    starting.health = Some(health(HealthStatus::Starting, 1, "slow"));
    let d = run(
        &mut s,
        &[healthy(0), starting, healthy(9), healthy(12), healthy(19)],
    );
    assert_eq!(d[3], Decision::Wait, "the soak restarted at 9 s");
    assert_eq!(d[4], Decision::Passed);
}

#[test]
fn without_a_check_health_reports_are_ignored() {
    let mut s = Soak::new(Duration::ZERO, START_BOUND, false);
    let mut o = at(1, unit("active", "running", 0));
    o.health = Some(health(HealthStatus::Unhealthy, 3, "x"));
    assert_eq!(s.observe(&o), Decision::Passed);
}

#[test]
fn a_report_from_before_the_restart_counts_for_nothing() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, true).checks_after(100);
    let stale = |t, status| {
        let mut o = at(t, unit("active", "running", 0));
        let mut h = health(status, 0, "old run");
        h.last = Some(Check {
            at: 99,
            exit: Some(0),
            output: "old run".into(),
        });
        o.health = Some(h);
        o
    };
    // An old healthy report does not start the soak; an old unhealthy one
    // does not fail it.
    let d = run(
        &mut s,
        &[
            stale(0, HealthStatus::Healthy),
            stale(11, HealthStatus::Unhealthy),
        ],
    );
    assert_eq!(d, [Decision::Wait, Decision::Wait]);
    let mut fresh = at(12, unit("active", "running", 0));
    let mut h = health(HealthStatus::Healthy, 0, "ok");
    h.last = Some(Check {
        at: 101,
        exit: Some(0),
        output: "ok".into(),
    });
    fresh.health = Some(h);
    assert_eq!(s.observe(&fresh), Decision::Wait);
    let mut later = fresh.clone();
    later.at = Duration::from_secs(22);
    assert_eq!(s.observe(&later), Decision::Passed);
}

#[test]
fn berth_run_giving_up_names_the_check_not_exit_69() {
    // The container was stopped between two polls: the last report seen
    // was a starting one with two failures, then the unit failed with 69.
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, true).health_retries(3);
    let mut o = at(2, unit("active", "running", 0));
    o.health = Some(health(HealthStatus::Starting, 2, "no pong\n"));
    assert_eq!(s.observe(&o), Decision::Wait);
    let mut failed = unit("failed", "failed", 0);
    failed.main_status = Some(UNHEALTHY_EXIT);
    let Decision::Failed(f) = s.observe(&at(3, failed)) else {
        panic!("not failed")
    };
    assert_eq!(f.to_string(), "health check failed 3 times: no pong");
}

#[test]
fn berth_run_giving_up_before_any_report_still_names_the_check() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, true).health_retries(2);
    let mut restarting = unit("activating", "auto-restart", 1);
    restarting.main_status = Some(UNHEALTHY_EXIT);
    let _ = s.observe(&at(0, unit("activating", "start", 0)));
    let Decision::Failed(f) = s.observe(&at(4, restarting)) else {
        panic!("not failed")
    };
    assert_eq!(
        f.to_string(),
        "health check failed 2 times: berth-run stopped the container (exit 69); see the journal"
    );
}

#[test]
fn exit_69_without_a_check_is_the_payloads_own_exit() {
    let mut s = Soak::new(Duration::from_secs(10), START_BOUND, false);
    let mut failed = unit("failed", "failed", 0);
    failed.main_status = Some(UNHEALTHY_EXIT);
    let Decision::Failed(f) = s.observe(&at(3, failed)) else {
        panic!("not failed")
    };
    assert_eq!(f.to_string(), "exited 3 s after start (status 69)");
}

#[test]
fn a_failed_start_job_of_a_check_that_gave_up_names_the_check() {
    let mut u = unit("activating", "auto-restart", 0);
    u.main_status = Some(UNHEALTHY_EXIT);
    let f = start_failed(&u, Some(3), "restarting app.service: failed".into());
    assert!(matches!(f, Failure::Unhealthy { streak: 3, .. }), "{f:?}");
    // Without a check, or another status: the manager's own words.
    for (status, retries) in [(Some(UNHEALTHY_EXIT), None), (Some(1), Some(3))] {
        u.main_status = status;
        let f = start_failed(&u, retries, "restarting app.service: failed".into());
        assert_eq!(f.to_string(), "restarting app.service: failed");
    }
}

#[test]
fn an_unseen_output_is_taken_from_berth_runs_journal_line() {
    let mut u = unit("failed", "failed", 0);
    u.main_status = Some(UNHEALTHY_EXIT);
    let f = start_failed(&u, Some(3), String::new());
    let journal = [
        "… berth-run[539]: soakd 4: started".to_string(),
        "… berth-run[537]: ERROR health check failed 3 times (last: exit 1, \
         \"soakd 4: not healthy\"); stopping the container"
            .to_string(),
        "… systemd[1]: hc.service: Main process exited, code=exited, status=69/UNAVAILABLE"
            .to_string(),
    ];
    assert_eq!(
        f.clone().with_journal_output(&journal).to_string(),
        "health check failed 3 times: soakd 4: not healthy"
    );
    // No such line: the placeholder stays; a seen output is never replaced.
    assert_eq!(f.clone().with_journal_output(&journal[..1]), f);
    let seen = Failure::Unhealthy {
        streak: 3,
        output: "refused".into(),
    };
    assert_eq!(seen.clone().with_journal_output(&journal), seen);
}
