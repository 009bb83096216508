//! Participants, cash through the bank rails, and the listing of instruments.

use crate::command::{
    Ack, Event, InstrumentId, InstrumentKind, InstrumentSpec, ParticipantId, RejectReason, Role,
};
use crate::config::BP_ONE;
use crate::instrument::{Instrument, Terms};
use crate::ledger::{CashAccount, Participant};
use crate::Engine;

/// Longest instrument symbol, in bytes.
pub const SYMBOL_BYTES_MAX: usize = 16;

/// Longest lock-in a listing may state.
pub const LOCK_IN_YEARS_MAX: u32 = 100;

/// Longest withdrawal notice a listing may state (about ten years).
pub const WITHDRAWAL_NOTICE_DAYS_MAX: u32 = 3_660;

impl Engine {
    pub(crate) fn register_participant(
        &mut self,
        role: Role,
        name: &str,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        if name.trim().is_empty() || name.len() > self.config.name_bytes_max as usize {
            return Err(RejectReason::NameInvalid);
        }
        if self.participants.len() >= self.config.participants_max as usize {
            return Err(RejectReason::ParticipantsFull);
        }
        let participant = ParticipantId(self.participants.len() as u32);
        self.participants.push(Participant {
            role,
            name: name.to_string(),
            accredited: false,
            suspended: false,
            cash: CashAccount::default(),
        });
        events.push(Event::ParticipantRegistered {
            participant,
            role,
            name: name.to_string(),
        });
        Ok(Ack::Participant(participant))
    }

    pub(crate) fn set_accreditation(
        &mut self,
        organization: ParticipantId,
        accredited: bool,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let participant = self
            .participants
            .get_mut(organization.0 as usize)
            .ok_or(RejectReason::UnknownAccount)?;
        if participant.role != Role::Organization {
            return Err(RejectReason::NotAnOrganization);
        }
        if participant.accredited == accredited {
            return Err(RejectReason::NoEffect);
        }
        participant.accredited = accredited;
        events.push(Event::AccreditationChanged {
            organization,
            accredited,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn deposit(
        &mut self,
        account: ParticipantId,
        amount_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let participant = self
            .participants
            .get_mut(account.0 as usize)
            .ok_or(RejectReason::UnknownAccount)?;
        if amount_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        // Cash in circulation must fit one account, so that no credit can ever overflow.
        let circulating = self.deposited_minor - self.withdrawn_minor + u128::from(amount_minor);
        if circulating > u128::from(u64::MAX) {
            return Err(RejectReason::AmountTooLarge);
        }
        participant.cash.credit(amount_minor);
        self.deposited_minor += u128::from(amount_minor);
        events.push(Event::CashDeposited {
            account,
            amount_minor,
            balance_minor: participant.cash.balance_minor,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn withdraw(
        &mut self,
        account: ParticipantId,
        amount_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let participant = self
            .participants
            .get_mut(account.0 as usize)
            .ok_or(RejectReason::UnknownAccount)?;
        if amount_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        if participant.cash.free_minor() < amount_minor {
            return Err(RejectReason::InsufficientCash);
        }
        participant.cash.pay_free(amount_minor);
        self.withdrawn_minor += u128::from(amount_minor);
        events.push(Event::CashWithdrawn {
            account,
            amount_minor,
            balance_minor: participant.cash.balance_minor,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn list_instrument(
        &mut self,
        spec: &InstrumentSpec,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let terms = self.validate_spec(spec)?;
        if self.instruments.len() >= self.config.instruments_max as usize {
            return Err(RejectReason::InstrumentsFull);
        }
        let id = InstrumentId(self.instruments.len() as u32);
        self.symbols.insert(spec.symbol.clone(), id);
        self.shares_by_issuer
            .entry(spec.issuer)
            .or_default()
            .push(id);
        if let Some(maturity_time) = spec.maturity_time {
            self.social.maturing.insert((maturity_time, id));
        }
        self.instruments.push(Instrument::new(
            id,
            spec.clone(),
            terms,
            self.config.price_levels_max,
        ));
        events.push(Event::InstrumentListed {
            instrument: id,
            spec: Box::new(spec.clone()),
        });
        Ok(Ack::Instrument(id))
    }

    /// Checks a listing and resolves its defaults, in the order of `RejectReason`.
    fn validate_spec(&self, spec: &InstrumentSpec) -> Result<Terms, RejectReason> {
        let issuer = self
            .participant(spec.issuer)
            .ok_or(RejectReason::UnknownAccount)?;
        if issuer.role != Role::Organization {
            return Err(RejectReason::NotAnOrganization);
        }
        self.accredited_organization(spec.issuer)?;
        let symbol_ok = !spec.symbol.is_empty()
            && spec.symbol.len() <= SYMBOL_BYTES_MAX
            && spec
                .symbol
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !symbol_ok {
            return Err(RejectReason::SymbolInvalid);
        }
        if self.symbols.contains_key(&spec.symbol) {
            return Err(RejectReason::SymbolTaken);
        }
        if spec.tick_size_minor == 0 {
            return Err(RejectReason::TickSizeInvalid);
        }
        if spec.lot_size_units == 0 {
            return Err(RejectReason::LotSizeInvalid);
        }
        let tick_value_minor = spec
            .tick_size_minor
            .checked_mul(spec.lot_size_units)
            .ok_or(RejectReason::LotSizeInvalid)?;
        let price_ticks_max = u64::from(self.config.price_levels_max) - 1;
        let par_fits = spec.par_ticks > 0
            && spec.par_ticks <= price_ticks_max
            // The ceiling's whole range must be priceable per lot without overflow.
            && price_ticks_max.checked_mul(tick_value_minor).is_some();
        if !par_fits {
            return Err(RejectReason::ParInvalid);
        }
        if u64::from(spec.return_cap_bp) > BP_ONE {
            return Err(RejectReason::ReturnCapInvalid);
        }
        if spec.price_floor_ticks > spec.par_ticks {
            return Err(RejectReason::PriceFloorInvalid);
        }
        let maturity_ok = match (spec.kind.matures(), spec.maturity_time) {
            (true, Some(maturity)) => maturity > self.now,
            (false, None) => true,
            _ => false,
        };
        if !maturity_ok
            || (spec.cooperative_investment_plan && spec.kind != InstrumentKind::CommunityShare)
        {
            return Err(RejectReason::MaturityInvalid);
        }
        let holding_cap_bp = spec
            .holding_cap_bp
            .unwrap_or(self.config.holding_cap_bp_default);
        if holding_cap_bp == 0 || u64::from(holding_cap_bp) > BP_ONE {
            return Err(RejectReason::HoldingCapInvalid);
        }
        let cip = spec.cooperative_investment_plan;
        let tax_credit_bp = spec
            .tax_credit_bp
            .unwrap_or(self.config.tax_credit_bp.for_kind(spec.kind, cip));
        if u64::from(tax_credit_bp) > BP_ONE {
            return Err(RejectReason::TaxCreditInvalid);
        }
        let lock_in_years = spec.lock_in_years.unwrap_or(if cip {
            self.config.cip_lock_in_years_default
        } else {
            0
        });
        if lock_in_years > LOCK_IN_YEARS_MAX {
            return Err(RejectReason::LockInInvalid);
        }
        let withdrawal_terms_ok = if spec.withdrawable {
            spec.kind == InstrumentKind::CommunityShare
                && spec.withdrawal_notice_days <= WITHDRAWAL_NOTICE_DAYS_MAX
        } else {
            spec.withdrawal_notice_days == 0
        };
        if !withdrawal_terms_ok {
            return Err(RejectReason::WithdrawalTermsInvalid);
        }
        let price_floor_ticks = if spec.withdrawable {
            spec.par_ticks
        } else {
            spec.price_floor_ticks
        };
        Ok(Terms {
            holding_cap_bp,
            lock_in_years,
            tax_credit_bp,
            price_floor_ticks,
            tick_value_minor,
            price_ticks_max,
        })
    }

    pub(crate) fn set_trading_status(
        &mut self,
        instrument: InstrumentId,
        open: bool,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let instrument_state = self
            .instruments
            .get_mut(instrument.0 as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if instrument_state.status.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        if instrument_state.status.trading_open == open {
            return Err(RejectReason::NoEffect);
        }
        instrument_state.status.trading_open = open;
        events.push(Event::TradingStatusChanged { instrument, open });
        Ok(Ack::Done)
    }
}
