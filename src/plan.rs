//! Pure decisions: from the VIP route observed in a table, what a claim or a release must do,
//! and who holds the VIP across the selected tables. No I/O here.

use crate::config::WriteMode;
use crate::report::{Holder, RouteState};

/// The VIP's route as seen in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    /// The route's target (an ENI id, or another target's id); `None` when absent.
    pub target: Option<String>,
    pub state: RouteState,
}

impl RouteView {
    pub fn absent() -> Self {
        RouteView {
            target: None,
            state: RouteState::Absent,
        }
    }

    pub fn points_at(&self, eni: &str) -> bool {
        self.state != RouteState::Absent && self.target.as_deref() == Some(eni)
    }
}

/// One mutation (or none) for one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `ReplaceRoute`: a route exists and must point at us.
    Replace,
    /// `CreateRoute`: no route exists yet.
    Create,
    /// `DeleteRoute`: the route is ours and is being released.
    Delete,
    /// Nothing to do: costs no mutating call.
    Keep,
}

/// What a claim does to a table.
///
/// EC2 reads are eventually consistent: right after another member's claim a read can still
/// show the route at us. So `Always` (a failover) writes every table; only `Changed` (the
/// periodic re-assert, where a missed table is caught on the next round) trusts an active
/// route to us and leaves it alone.
pub fn claim_step(route: &RouteView, eni: &str, mode: WriteMode) -> Step {
    match route.state {
        RouteState::Absent => Step::Create,
        RouteState::Active if mode == WriteMode::Changed && route.points_at(eni) => Step::Keep,
        // A blackholed route to us (ENI detached and re-attached) is re-asserted too.
        _ => Step::Replace,
    }
}

/// What a release does to a table: only a route that still points at us is deleted.
pub fn release_step(route: &RouteView, eni: &str) -> Step {
    if route.points_at(eni) {
        Step::Delete
    } else {
        Step::Keep
    }
}

/// Whether a read-back that does not (yet) show `step`'s effect may just be stale: it still
/// shows the state the step was planned on. Anything else is a third party's doing (another
/// member acted after us), which waiting will not change.
pub fn may_be_stale(step: Step, before: &RouteView, seen: &RouteView) -> bool {
    match step {
        Step::Keep => false,
        _ => seen == before,
    }
}

/// Whether `route` is what `step` was meant to produce.
pub fn step_took_effect(step: Step, route: &RouteView, eni: &str) -> bool {
    match step {
        Step::Replace | Step::Create => route.points_at(eni) && route.state == RouteState::Active,
        Step::Delete => !route.points_at(eni),
        Step::Keep => true,
    }
}

/// Who the VIP route points at across the selected tables (see the contract's `holder`).
pub fn holder<'a>(routes: impl IntoIterator<Item = &'a RouteView>, eni: &str) -> Holder {
    let mut any = false;
    let mut all_self = true;
    let mut all_absent = true;
    let mut other: Option<Option<&str>> = None;
    let mut one_other = true;
    for r in routes {
        any = true;
        let present = r.state != RouteState::Absent;
        all_absent &= !present;
        all_self &= r.points_at(eni);
        if !present || r.points_at(eni) {
            one_other = false;
        } else {
            match other {
                None => other = Some(r.target.as_deref()),
                Some(t) if t == r.target.as_deref() => {}
                Some(_) => one_other = false,
            }
        }
    }
    if !any || all_absent {
        Holder::None
    } else if all_self {
        Holder::Myself
    } else if one_other {
        Holder::Other
    } else {
        Holder::Mixed
    }
}

/// What a call does to a moved address (`mode=private-ip`, `mode=eip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressStep {
    /// Move it to our ENI (assign / associate).
    Take,
    /// Let go of it (unassign / disassociate): it is ours and is being released.
    Release,
    /// Nothing to do.
    Keep,
}

/// A claim moves the address unless a read shows it ours and `mode` is `Changed`: as for
/// routes, a read right after another member's claim can still show it ours.
pub fn address_claim_step(ours: bool, mode: WriteMode) -> AddressStep {
    if ours && mode == WriteMode::Changed {
        AddressStep::Keep
    } else {
        AddressStep::Take
    }
}

/// A release lets go only of an address that is ours.
pub fn address_release_step(ours: bool) -> AddressStep {
    if ours {
        AddressStep::Release
    } else {
        AddressStep::Keep
    }
}

/// Who holds a moved address: its ENI (`None`: nobody).
pub fn address_holder(target: Option<&str>, eni: &str) -> Holder {
    match target {
        None => Holder::None,
        Some(t) if t == eni => Holder::Myself,
        Some(_) => Holder::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "eni-aaaa";

    fn to(t: &str) -> RouteView {
        RouteView {
            target: Some(t.into()),
            state: RouteState::Active,
        }
    }

    fn blackhole(t: &str) -> RouteView {
        RouteView {
            target: Some(t.into()),
            state: RouteState::Blackhole,
        }
    }

    #[test]
    fn claim_steps() {
        use WriteMode::{Always, Changed};
        assert_eq!(claim_step(&RouteView::absent(), ME, Changed), Step::Create);
        assert_eq!(claim_step(&to(ME), ME, Changed), Step::Keep);
        assert_eq!(claim_step(&to("eni-bbbb"), ME, Changed), Step::Replace);
        assert_eq!(claim_step(&blackhole(ME), ME, Changed), Step::Replace);
        assert_eq!(
            claim_step(&blackhole("eni-bbbb"), ME, Changed),
            Step::Replace
        );
        // A failover claim does not trust a read that shows the route already at us.
        assert_eq!(claim_step(&to(ME), ME, Always), Step::Replace);
        assert_eq!(claim_step(&RouteView::absent(), ME, Always), Step::Create);
        assert_eq!(claim_step(&to("eni-bbbb"), ME, Always), Step::Replace);
    }

    #[test]
    fn staleness_is_the_planned_state_seen_again() {
        let b = to("eni-bbbb");
        // Replace planned on B's route; a read that still shows B may be stale...
        assert!(may_be_stale(Step::Replace, &b, &b));
        // ...one that shows a third member is not.
        assert!(!may_be_stale(Step::Replace, &b, &to("eni-cccc")));
        assert!(may_be_stale(
            Step::Create,
            &RouteView::absent(),
            &RouteView::absent()
        ));
        assert!(may_be_stale(Step::Delete, &to(ME), &to(ME)));
        assert!(!may_be_stale(Step::Keep, &to(ME), &to(ME)));
    }

    #[test]
    fn release_touches_only_our_route() {
        assert_eq!(release_step(&to(ME), ME), Step::Delete);
        assert_eq!(release_step(&blackhole(ME), ME), Step::Delete);
        assert_eq!(release_step(&to("eni-bbbb"), ME), Step::Keep);
        assert_eq!(release_step(&RouteView::absent(), ME), Step::Keep);
    }

    #[test]
    fn effects() {
        assert!(step_took_effect(Step::Replace, &to(ME), ME));
        assert!(!step_took_effect(Step::Replace, &to("eni-bbbb"), ME));
        assert!(!step_took_effect(Step::Create, &blackhole(ME), ME));
        assert!(step_took_effect(Step::Delete, &RouteView::absent(), ME));
        assert!(step_took_effect(Step::Delete, &to("eni-bbbb"), ME));
        assert!(!step_took_effect(Step::Delete, &to(ME), ME));
    }

    #[test]
    fn address_steps_and_holders() {
        use WriteMode::{Always, Changed};
        assert_eq!(address_claim_step(true, Always), AddressStep::Take);
        assert_eq!(address_claim_step(true, Changed), AddressStep::Keep);
        assert_eq!(address_claim_step(false, Changed), AddressStep::Take);
        assert_eq!(address_release_step(true), AddressStep::Release);
        assert_eq!(address_release_step(false), AddressStep::Keep);
        assert_eq!(address_holder(None, ME), Holder::None);
        assert_eq!(address_holder(Some(ME), ME), Holder::Myself);
        assert_eq!(address_holder(Some("eni-bbbb"), ME), Holder::Other);
    }

    #[test]
    fn holders() {
        let b = "eni-bbbb";
        assert_eq!(holder(&[], ME), Holder::None);
        assert_eq!(
            holder(&[RouteView::absent(), RouteView::absent()], ME),
            Holder::None
        );
        assert_eq!(holder(&[to(ME), to(ME)], ME), Holder::Myself);
        assert_eq!(holder(&[to(ME), blackhole(ME)], ME), Holder::Myself);
        assert_eq!(holder(&[to(b), to(b)], ME), Holder::Other);
        assert_eq!(holder(&[to(b), blackhole(b)], ME), Holder::Other);
        assert_eq!(holder(&[to(b), to("eni-cccc")], ME), Holder::Mixed);
        assert_eq!(holder(&[to(ME), to(b)], ME), Holder::Mixed);
        assert_eq!(holder(&[to(ME), RouteView::absent()], ME), Holder::Mixed);
        assert_eq!(holder(&[to(b), RouteView::absent()], ME), Holder::Mixed);
    }
}
