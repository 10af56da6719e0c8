//! PURE: when to run a check and what its result means.
//!
//! Time is the container's age (a monotonic [`Duration`] since start), so
//! the machine is driven by tests without clocks. The first check runs one
//! interval after start, the next one interval after the previous one
//! finished (Docker's schedule). Failures that finish inside the start
//! period do not count; a pass inside it ends it. `retries` consecutive
//! counted failures make the container unhealthy, after which nothing more
//! runs.

use std::time::Duration;

use super::{Check, Config, State, Status};

/// What the caller does next ([`Machine::poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing until [`Machine::deadline`].
    Wait,
    /// Start a check now.
    Run,
    /// The running check is past its timeout: kill it (then report it with
    /// [`Machine::finished`] as failed).
    Kill,
}

/// What a finished check changed ([`Machine::finished`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// This was the first check ever to pass (release a held `READY=1`).
    pub first_pass: bool,
    /// The container just became unhealthy: stop it.
    pub stop: bool,
}

/// The schedule and counters of one container's checks.
#[derive(Debug, Clone)]
pub struct Machine {
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    retries: u32,
    state: State,
    next: Duration,
    running: Option<Duration>,
    killed: bool,
    passed_once: bool,
}

impl Machine {
    /// The machine of a container that just started.
    pub fn new(cfg: &Config) -> Machine {
        Machine {
            interval: cfg.interval,
            timeout: cfg.timeout,
            start_period: cfg.start_period,
            retries: cfg.retries.max(1),
            state: State {
                status: Status::Starting,
                failing_streak: 0,
                checks: 0,
                last: None,
            },
            next: cfg.interval,
            running: None,
            killed: false,
            passed_once: false,
        }
    }

    /// What `status` shows now.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// When [`Machine::poll`] has something to do; `None` once unhealthy
    /// (or while a killed check is being reaped).
    pub fn deadline(&self) -> Option<Duration> {
        if self.state.status == Status::Unhealthy {
            return None;
        }
        match self.running {
            Some(_) if self.killed => None,
            Some(started) => Some(started + self.timeout),
            None => Some(self.next),
        }
    }

    /// True while the running check is one [`Decision::Kill`] ended.
    pub fn timed_out(&self) -> bool {
        self.killed
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Duration) -> Decision {
        match self.deadline() {
            Some(d) if now >= d => {}
            _ => return Decision::Wait,
        }
        if self.running.is_some() {
            self.killed = true;
            Decision::Kill
        } else {
            self.running = Some(now);
            Decision::Run
        }
    }

    /// The running check ended at `now` (exit `None`: killed or could not
    /// run); `check` is what the state records.
    pub fn finished(&mut self, now: Duration, check: Check) -> Outcome {
        self.running = None;
        self.killed = false;
        self.next = now + self.interval;
        self.state.checks += 1;
        let passed = check.exit == Some(0);
        self.state.last = Some(check);
        let mut out = Outcome {
            first_pass: false,
            stop: false,
        };
        if passed {
            self.state.failing_streak = 0;
            self.state.status = Status::Healthy;
            out.first_pass = !self.passed_once;
            self.passed_once = true;
        } else if self.passed_once || now >= self.start_period {
            self.state.failing_streak += 1;
            if self.state.failing_streak >= self.retries {
                self.state.status = Status::Unhealthy;
                out.stop = true;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::health::Command;

    const S: Duration = Duration::from_secs(1);

    fn cfg(interval: u64, timeout: u64, start: u64, retries: u32) -> Config {
        Config {
            command: Command::Shell("true".into()),
            interval: S * interval as u32,
            timeout: S * timeout as u32,
            start_period: S * start as u32,
            retries,
        }
    }

    fn check(exit: Option<i32>) -> Check {
        Check {
            at: 0,
            exit,
            output: String::new(),
        }
    }

    /// Runs one check starting at `at` that ends `took` later with `exit`.
    fn run(m: &mut Machine, at: Duration, took: Duration, exit: i32) -> Outcome {
        assert_eq!(m.deadline(), Some(at));
        assert_eq!(m.poll(at), Decision::Run);
        assert_eq!(m.poll(at + took), Decision::Wait);
        m.finished(at + took, check(Some(exit)))
    }

    #[test]
    fn first_check_runs_one_interval_after_start_then_after_each_finish() {
        let mut m = Machine::new(&cfg(10, 5, 0, 3));
        assert_eq!(m.poll(S * 9), Decision::Wait);
        assert_eq!(m.state().status, Status::Starting);
        let o = run(&mut m, S * 10, S, 0);
        assert_eq!(
            o,
            Outcome {
                first_pass: true,
                stop: false
            }
        );
        assert_eq!(m.state().status, Status::Healthy);
        assert_eq!(m.deadline(), Some(S * 21));
        let o = run(&mut m, S * 21, S, 0);
        assert!(!o.first_pass, "only the first pass releases READY");
        assert_eq!(m.state().checks, 2);
    }

    #[test]
    fn retries_consecutive_failures_make_it_unhealthy() {
        let mut m = Machine::new(&cfg(1, 1, 0, 3));
        run(&mut m, S, Duration::ZERO, 0);
        assert!(!run(&mut m, S * 2, Duration::ZERO, 1).stop);
        assert_eq!(
            m.state().status,
            Status::Healthy,
            "healthy until retries fail"
        );
        assert!(!run(&mut m, S * 3, Duration::ZERO, 1).stop);
        assert_eq!(m.state().failing_streak, 2);
        assert!(run(&mut m, S * 4, Duration::ZERO, 1).stop);
        assert_eq!(m.state().status, Status::Unhealthy);
        assert_eq!(m.deadline(), None);
        assert_eq!(m.poll(S * 100), Decision::Wait);
    }

    #[test]
    fn a_pass_resets_the_streak() {
        let mut m = Machine::new(&cfg(1, 1, 0, 2));
        run(&mut m, S, Duration::ZERO, 1);
        assert_eq!(m.state().failing_streak, 1);
        assert_eq!(m.state().status, Status::Starting);
        run(&mut m, S * 2, Duration::ZERO, 0);
        assert_eq!(m.state().failing_streak, 0);
        assert!(!run(&mut m, S * 3, Duration::ZERO, 1).stop);
        assert!(run(&mut m, S * 4, Duration::ZERO, 1).stop);
    }

    #[test]
    fn failures_inside_the_start_period_do_not_count() {
        let mut m = Machine::new(&cfg(2, 1, 5, 1));
        assert!(!run(&mut m, S * 2, Duration::ZERO, 1).stop);
        assert!(!run(&mut m, S * 4, Duration::ZERO, 1).stop);
        assert_eq!(m.state().failing_streak, 0);
        assert_eq!(m.state().status, Status::Starting);
        assert_eq!(m.state().checks, 2);
        assert!(run(&mut m, S * 6, Duration::ZERO, 1).stop);
    }

    #[test]
    fn a_pass_ends_the_start_period() {
        let mut m = Machine::new(&cfg(1, 1, 60, 1));
        run(&mut m, S, Duration::ZERO, 0);
        assert!(run(&mut m, S * 2, Duration::ZERO, 1).stop);
    }

    #[test]
    fn a_check_past_its_timeout_is_killed_once_and_fails() {
        let mut m = Machine::new(&cfg(10, 3, 0, 1));
        assert_eq!(m.poll(S * 10), Decision::Run);
        assert_eq!(m.deadline(), Some(S * 13));
        assert_eq!(m.poll(S * 12), Decision::Wait);
        assert_eq!(m.poll(S * 13), Decision::Kill);
        assert_eq!(m.deadline(), None, "waits for the killed check");
        assert_eq!(m.poll(S * 14), Decision::Wait);
        let o = m.finished(S * 14, check(None));
        assert!(o.stop);
        assert_eq!(m.state().last.as_ref().and_then(|c| c.exit), None);
    }
}
