//! The membership register and its votes: one member, one vote (DOMAIN.md, "Limited investor
//! control").
//!
//! Every holder of at least one unit of an organization's community shares is a member of that
//! organization, whatever the holding, from the time its holding last went from none to some.
//! An organization puts a resolution to its members with a closing time; each member votes once
//! (for, against, abstain) while it is open; at or after the closing time the organization closes
//! it and the count is final, as an event. A vote counts only if its member is still a member at
//! the close without having sold out in between (a member who sells out loses its vote on open
//! resolutions). A resolution passes with more votes for than against; abstentions are recorded
//! and do not count either way.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::command::{
    Ack, Event, InstrumentKind, ParticipantId, RejectReason, ResolutionId, Timestamp, VoteChoice,
};
use crate::Engine;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub id: ResolutionId,
    pub organization: ParticipantId,
    pub title: String,
    pub proposed_at: Timestamp,
    pub closes_at: Timestamp,
    /// One vote per member, by member.
    pub votes: BTreeMap<ParticipantId, Vote>,
    /// The final count, once closed.
    pub result: Option<ResolutionResult>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub choice: VoteChoice,
    pub cast_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionResult {
    pub closed_at: Timestamp,
    pub votes_for: u32,
    pub votes_against: u32,
    pub abstentions: u32,
    pub votes_lapsed: u32,
    pub passed: bool,
}

impl Resolution {
    pub fn is_open(&self) -> bool {
        self.result.is_none()
    }
}

/// Every resolution ever put, in id order, and how many each organization has open.
#[derive(Clone, Debug, Default)]
pub(crate) struct Membership {
    pub resolutions: Vec<Resolution>,
    /// Derived from `resolutions`.
    open_per_organization: FxHashMap<ParticipantId, u32>,
    /// Open resolutions by closing time, for the clock. Derived from `resolutions`.
    closing: BTreeSet<(Timestamp, ResolutionId)>,
}

impl Membership {
    pub fn restore(resolutions: Vec<Resolution>) -> Membership {
        let mut membership = Membership {
            resolutions,
            open_per_organization: FxHashMap::default(),
            closing: BTreeSet::new(),
        };
        for resolution in membership
            .resolutions
            .iter()
            .filter(|resolution| resolution.is_open())
        {
            membership
                .closing
                .insert((resolution.closes_at, resolution.id));
            *membership
                .open_per_organization
                .entry(resolution.organization)
                .or_default() += 1;
        }
        membership
    }

    pub fn open_of(&self, organization: ParticipantId) -> u32 {
        self.open_per_organization
            .get(&organization)
            .copied()
            .unwrap_or(0)
    }

    /// The open resolution that closes earliest, if its closing time is at or before `now`.
    pub fn next_due(&self, now: Timestamp) -> Option<ResolutionId> {
        self.closing
            .first()
            .filter(|(closes_at, _)| *closes_at <= now)
            .map(|(_, id)| *id)
    }
}

impl Engine {
    /// When `participant` became a member of `organization`, if it is one now: the earliest
    /// `held_since` among its holdings of the organization's community shares that hold a unit.
    pub fn member_since(
        &self,
        organization: ParticipantId,
        participant: ParticipantId,
    ) -> Option<Timestamp> {
        self.community_shares_of(organization)
            .filter_map(|share| share.holding(participant))
            .filter(|holding| holding.lots > 0)
            .map(|holding| holding.held_since)
            .min()
    }

    /// An organization's members with the time each became one, in participant order.
    pub fn members_of(&self, organization: ParticipantId) -> Vec<(ParticipantId, Timestamp)> {
        let mut members: BTreeMap<ParticipantId, Timestamp> = BTreeMap::new();
        for share in self.community_shares_of(organization) {
            for (holder, holding) in &share.holdings {
                if holding.lots > 0 {
                    let since = members.entry(*holder).or_insert(holding.held_since);
                    *since = (*since).min(holding.held_since);
                }
            }
        }
        members.into_iter().collect()
    }

    fn community_shares_of(
        &self,
        organization: ParticipantId,
    ) -> impl Iterator<Item = &crate::Instrument> {
        self.shares_by_issuer
            .get(&organization)
            .into_iter()
            .flatten()
            .map(|id| &self.instruments[id.0 as usize])
            .filter(|share| share.spec.kind == InstrumentKind::CommunityShare)
    }

    pub(crate) fn propose_resolution(
        &mut self,
        organization: ParticipantId,
        title: &str,
        closes_at: Timestamp,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        if title.trim().is_empty()
            || title.len() > self.config.resolution_title_bytes_max as usize
            || closes_at <= self.now
        {
            return Err(RejectReason::ResolutionInvalid);
        }
        let market_full = self.membership.resolutions.len() >= self.config.resolutions_max as usize;
        if market_full
            || self.membership.open_of(organization)
                >= self.config.resolutions_open_per_organization_max
        {
            return Err(RejectReason::ResolutionsFull);
        }
        let id = ResolutionId(self.membership.resolutions.len() as u32);
        self.membership.resolutions.push(Resolution {
            id,
            organization,
            title: title.to_string(),
            proposed_at: self.now,
            closes_at,
            votes: BTreeMap::new(),
            result: None,
        });
        *self
            .membership
            .open_per_organization
            .entry(organization)
            .or_default() += 1;
        self.membership.closing.insert((closes_at, id));
        events.push(Event::ResolutionProposed {
            resolution: id,
            organization,
            title: title.to_string(),
            closes_at,
        });
        Ok(Ack::Resolution(id))
    }

    pub(crate) fn cast_vote(
        &mut self,
        member: ParticipantId,
        id: ResolutionId,
        choice: VoteChoice,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let resolution = self
            .membership
            .resolutions
            .get(id.0 as usize)
            .ok_or(RejectReason::UnknownResolution)?;
        if !resolution.is_open() || self.now >= resolution.closes_at {
            return Err(RejectReason::VotingClosed);
        }
        if self.member_since(resolution.organization, member).is_none() {
            return Err(RejectReason::NotAMember);
        }
        if resolution.votes.contains_key(&member) {
            return Err(RejectReason::AlreadyVoted);
        }
        let now = self.now;
        self.membership.resolutions[id.0 as usize].votes.insert(
            member,
            Vote {
                choice,
                cast_at: now,
            },
        );
        events.push(Event::VoteCast {
            resolution: id,
            member,
            choice,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn close_resolution(
        &mut self,
        organization: ParticipantId,
        id: ResolutionId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let resolution = self
            .membership
            .resolutions
            .get(id.0 as usize)
            .ok_or(RejectReason::UnknownResolution)?;
        if resolution.organization != organization {
            return Err(RejectReason::NotProposer);
        }
        if !resolution.is_open() {
            return Err(RejectReason::VotingClosed);
        }
        if self.now < resolution.closes_at {
            return Err(RejectReason::VotingStillOpen);
        }
        let mut result = ResolutionResult {
            closed_at: self.now,
            votes_for: 0,
            votes_against: 0,
            abstentions: 0,
            votes_lapsed: 0,
            passed: false,
        };
        for (member, vote) in &resolution.votes {
            // A vote lapses if its member sold out after voting, even if it bought back in.
            let still_member = self
                .member_since(organization, *member)
                .is_some_and(|since| since <= vote.cast_at);
            let count = match (still_member, vote.choice) {
                (false, _) => &mut result.votes_lapsed,
                (true, VoteChoice::For) => &mut result.votes_for,
                (true, VoteChoice::Against) => &mut result.votes_against,
                (true, VoteChoice::Abstain) => &mut result.abstentions,
            };
            *count += 1;
        }
        result.passed = result.votes_for > result.votes_against;
        self.membership.resolutions[id.0 as usize].result = Some(result);
        let closes_at = self.membership.resolutions[id.0 as usize].closes_at;
        self.membership.closing.remove(&(closes_at, id));
        let open = self
            .membership
            .open_per_organization
            .get_mut(&organization)
            .expect("an open resolution is counted");
        *open -= 1;
        if *open == 0 {
            self.membership.open_per_organization.remove(&organization);
        }
        events.push(Event::ResolutionClosed {
            resolution: id,
            organization,
            votes_for: result.votes_for,
            votes_against: result.votes_against,
            abstentions: result.abstentions,
            votes_lapsed: result.votes_lapsed,
            passed: result.passed,
        });
        Ok(Ack::Done)
    }

    pub fn resolution(&self, id: ResolutionId) -> Option<&Resolution> {
        self.membership.resolutions.get(id.0 as usize)
    }

    /// Every resolution, in id order.
    pub fn resolutions(&self) -> impl Iterator<Item = &Resolution> {
        self.membership.resolutions.iter()
    }
}
