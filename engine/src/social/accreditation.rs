//! Accreditation that means something (DOMAIN.md, "Who uses it"): only an accredited
//! organization may list instruments, open offerings, host time credits or redeem vouchers and
//! service value; a suspension stops all of those at once and keeps its balances and
//! obligations. Trading in its instruments already listed is the operator's decision
//! (`SetTradingStatus`), not a side effect of the suspension.

use crate::command::{Ack, Event, ParticipantId, RejectReason, Role};
use crate::ledger::Participant;
use crate::Engine;

use super::category_is_valid;

impl Engine {
    /// The organization, if it is registered, an organization, accredited and not suspended by
    /// the operator: what every gated action asks of its organization.
    pub(crate) fn accredited_organization(
        &self,
        organization: ParticipantId,
    ) -> Result<&Participant, RejectReason> {
        let participant = self
            .participant(organization)
            .ok_or(RejectReason::UnknownAccount)?;
        if participant.role != Role::Organization {
            return Err(RejectReason::NotAnOrganization);
        }
        if !participant.accredited {
            return Err(RejectReason::NotAccredited);
        }
        if participant.suspended {
            return Err(RejectReason::ParticipantSuspended);
        }
        Ok(participant)
    }

    /// Whether the organization's accreditation covers `category` (no list means every one).
    pub fn accredited_for(&self, organization: ParticipantId, category: &str) -> bool {
        self.social
            .categories
            .get(&organization)
            .is_none_or(|categories| categories.iter().any(|c| c == category))
    }

    /// The categories an organization is accredited for; `None` means every category.
    pub fn accredited_categories(&self, organization: ParticipantId) -> Option<&[String]> {
        self.social
            .categories
            .get(&organization)
            .map(|categories| categories.as_slice())
    }

    pub(crate) fn set_accredited_categories(
        &mut self,
        organization: ParticipantId,
        categories: &[String],
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let participant = self
            .participant(organization)
            .ok_or(RejectReason::UnknownAccount)?;
        if participant.role != Role::Organization {
            return Err(RejectReason::NotAnOrganization);
        }
        let mut sorted = categories.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let valid = sorted.len() == categories.len()
            && categories.len() <= self.config.accredited_categories_max as usize
            && categories.iter().all(|c| category_is_valid(c));
        if !valid {
            return Err(RejectReason::CategoriesInvalid);
        }
        let current = self.social.categories.get(&organization);
        let unchanged = match current {
            None => sorted.is_empty(),
            Some(current) => *current == sorted,
        };
        if unchanged {
            return Err(RejectReason::NoEffect);
        }
        if sorted.is_empty() {
            self.social.categories.remove(&organization);
        } else {
            self.social.categories.insert(organization, sorted.clone());
        }
        events.push(Event::AccreditedCategoriesSet {
            organization,
            categories: sorted,
        });
        Ok(Ack::Done)
    }
}
