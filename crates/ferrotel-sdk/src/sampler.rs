//! The built-in samplers, from `OTEL_TRACES_SAMPLER` / `_ARG`.

use ferrotel_config::Sampler;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not recorded: the span costs almost nothing.
    Drop,
    /// Recorded (processors see it) but not sampled (not exported); only samplers written in
    /// Python decide this.
    RecordOnly,
    RecordAndSample,
}

/// What a sampler knows of the parent span, if there is a valid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub sampled: bool,
    pub is_remote: bool,
}

/// Trace-id ratio sampling as upstream does it: the low 64 bits of the trace id below
/// `ratio * 2^64`, so every SDK with the same ratio keeps the same traces.
fn ratio_decision(ratio: f64, trace_id: u128) -> Decision {
    let bound = (ratio * 18_446_744_073_709_551_616.0).round() as u128;
    if (trace_id & u64::MAX as u128) < bound {
        Decision::RecordAndSample
    } else {
        Decision::Drop
    }
}

fn from(sampled: bool) -> Decision {
    if sampled {
        Decision::RecordAndSample
    } else {
        Decision::Drop
    }
}

pub fn should_sample(sampler: &Sampler, parent: Option<Parent>, trace_id: u128) -> Decision {
    match (sampler, parent) {
        (Sampler::AlwaysOn, _) => Decision::RecordAndSample,
        (Sampler::AlwaysOff, _) => Decision::Drop,
        (Sampler::TraceIdRatio(r), _) => ratio_decision(*r, trace_id),
        // Parent-based: a parent's decision is followed, whether it is local or remote.
        (
            Sampler::ParentBasedAlwaysOn | Sampler::ParentBasedAlwaysOff | Sampler::ParentBasedTraceIdRatio(_),
            Some(p),
        ) => from(p.sampled),
        (Sampler::ParentBasedAlwaysOn, None) => Decision::RecordAndSample,
        (Sampler::ParentBasedAlwaysOff, None) => Decision::Drop,
        (Sampler::ParentBasedTraceIdRatio(r), None) => ratio_decision(*r, trace_id),
        (Sampler::ParentBased(samplers), parent) => {
            let chosen = match parent {
                None => &samplers.root,
                Some(Parent {
                    is_remote: true,
                    sampled: true,
                }) => &samplers.remote_parent_sampled,
                Some(Parent {
                    is_remote: true,
                    sampled: false,
                }) => &samplers.remote_parent_not_sampled,
                Some(Parent {
                    is_remote: false,
                    sampled: true,
                }) => &samplers.local_parent_sampled,
                Some(Parent {
                    is_remote: false,
                    sampled: false,
                }) => &samplers.local_parent_not_sampled,
            };
            should_sample(chosen, parent, trace_id)
        }
        // An entry-point sampler runs in Python; one that could not be loaded is replaced by
        // the default, parent-based always-on, which is also what this falls back to.
        (Sampler::EntryPoint { .. }, Some(p)) => from(p.sampled),
        (Sampler::EntryPoint { .. }, None) => Decision::RecordAndSample,
    }
}

/// The description upstream's samplers report.
pub fn describe(sampler: &Sampler) -> String {
    let parent_based = |root: String| {
        format!(
            "ParentBased{{root:{root},remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,\
             localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}}"
        )
    };
    match sampler {
        Sampler::AlwaysOn => "AlwaysOnSampler".into(),
        Sampler::AlwaysOff => "AlwaysOffSampler".into(),
        Sampler::TraceIdRatio(r) => format!("TraceIdRatioBased{{{r}}}"),
        Sampler::ParentBasedAlwaysOn => parent_based("AlwaysOnSampler".into()),
        Sampler::ParentBasedAlwaysOff => parent_based("AlwaysOffSampler".into()),
        Sampler::ParentBasedTraceIdRatio(r) => parent_based(format!("TraceIdRatioBased{{{r}}}")),
        Sampler::ParentBased(s) => format!(
            "ParentBased{{root:{},remoteParentSampled:{},remoteParentNotSampled:{},localParentSampled:{},\
             localParentNotSampled:{}}}",
            describe(&s.root),
            describe(&s.remote_parent_sampled),
            describe(&s.remote_parent_not_sampled),
            describe(&s.local_parent_sampled),
            describe(&s.local_parent_not_sampled)
        ),
        Sampler::EntryPoint { name, .. } => name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_based_picks_by_parent_kind() {
        use ferrotel_config::ParentBasedSamplers;
        let sampler = Sampler::ParentBased(Box::new(ParentBasedSamplers {
            root: Sampler::AlwaysOff,
            remote_parent_sampled: Sampler::AlwaysOff,
            remote_parent_not_sampled: Sampler::AlwaysOn,
            local_parent_sampled: Sampler::AlwaysOn,
            local_parent_not_sampled: Sampler::TraceIdRatio(1.0),
        }));
        let parent = |sampled, is_remote| Some(Parent { sampled, is_remote });
        assert_eq!(should_sample(&sampler, None, 5), Decision::Drop);
        assert_eq!(should_sample(&sampler, parent(true, true), 5), Decision::Drop);
        assert_eq!(
            should_sample(&sampler, parent(false, true), 5),
            Decision::RecordAndSample
        );
        assert_eq!(
            should_sample(&sampler, parent(true, false), 5),
            Decision::RecordAndSample
        );
        assert_eq!(
            should_sample(&sampler, parent(false, false), 5),
            Decision::RecordAndSample
        );
        assert_eq!(
            describe(&sampler),
            "ParentBased{root:AlwaysOffSampler,remoteParentSampled:AlwaysOffSampler,\
             remoteParentNotSampled:AlwaysOnSampler,localParentSampled:AlwaysOnSampler,\
             localParentNotSampled:TraceIdRatioBased{1}}"
        );
    }

    const SAMPLED: Option<Parent> = Some(Parent {
        sampled: true,
        is_remote: true,
    });
    const NOT_SAMPLED: Option<Parent> = Some(Parent {
        sampled: false,
        is_remote: false,
    });

    #[test]
    fn decision_table() {
        use Decision::*;
        let cases: &[(Sampler, Option<Parent>, u128, Decision)] = &[
            (Sampler::AlwaysOn, NOT_SAMPLED, 5, RecordAndSample),
            (Sampler::AlwaysOff, SAMPLED, 5, Drop),
            (Sampler::ParentBasedAlwaysOn, None, 5, RecordAndSample),
            (Sampler::ParentBasedAlwaysOn, NOT_SAMPLED, 5, Drop),
            (Sampler::ParentBasedAlwaysOff, None, 5, Drop),
            (Sampler::ParentBasedAlwaysOff, SAMPLED, 5, RecordAndSample),
            (Sampler::TraceIdRatio(0.0), None, 0, Drop),
            (Sampler::TraceIdRatio(1.0), None, u64::MAX as u128, RecordAndSample),
            (Sampler::TraceIdRatio(0.5), None, 1 << 62, RecordAndSample),
            (Sampler::TraceIdRatio(0.5), None, 3 << 62, Drop),
            // Only the low 64 bits count.
            (
                Sampler::TraceIdRatio(0.5),
                None,
                (u64::MAX as u128) << 64 | 1,
                RecordAndSample,
            ),
            (Sampler::ParentBasedTraceIdRatio(0.0), SAMPLED, 3 << 62, RecordAndSample),
            (Sampler::ParentBasedTraceIdRatio(0.0), None, 3 << 62, Drop),
        ];
        for (sampler, parent, trace_id, expected) in cases {
            assert_eq!(
                should_sample(sampler, *parent, *trace_id),
                *expected,
                "{sampler:?} {parent:?} {trace_id:x}"
            );
        }
    }

    #[test]
    fn ratio_keeps_about_that_share() {
        let kept = (0..100_000u128)
            .filter(|_| {
                should_sample(&Sampler::TraceIdRatio(0.25), None, crate::ids::new_trace_id())
                    == Decision::RecordAndSample
            })
            .count();
        assert!((23_000..27_000).contains(&kept), "{kept}");
    }

    #[test]
    fn descriptions() {
        assert_eq!(describe(&Sampler::TraceIdRatio(0.5)), "TraceIdRatioBased{0.5}");
        assert!(describe(&Sampler::ParentBasedAlwaysOn).starts_with("ParentBased{root:AlwaysOnSampler,"));
    }
}
