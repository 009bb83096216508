//! Vouchers (DOMAIN.md, "Vouchers"; the Bologna scheme): a funder defines service packages and
//! issues vouchers for them to beneficiaries. At issue the face value is reserved from the
//! funder's cash and the beneficiary's co-payment, if any, from the beneficiary's. Redemption is
//! once and in full, at an accredited organization of the beneficiary's choice, in one step: the
//! co-payment moves to the funder and the funder owes the organization the face value (its
//! reservation stays until the netting cycle settles the obligation). A voucher that expires
//! releases both reservations.
//!
//! Only the funder ever learns the split: every other party, and the public record, sees the
//! same voucher whatever its co-payment (`Event::VoucherSplit` is private to the funder).

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::calendar::NS_PER_DAY;
use crate::command::{
    Ack, Event, ObligationCause, PackageId, ParticipantId, RejectReason, Role, Timestamp, VoucherId,
};
use crate::Engine;

use super::category_is_valid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePackage {
    pub id: PackageId,
    pub funder: ParticipantId,
    pub category: String,
    pub name: String,
    pub face_value_minor: u64,
}

/// An open voucher: issued, neither redeemed nor expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    pub id: VoucherId,
    pub package: PackageId,
    pub funder: ParticipantId,
    pub beneficiary: ParticipantId,
    pub face_value_minor: u64,
    /// Private to the funder.
    pub co_payment_minor: u64,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoucherStatus {
    Open,
    Redeemed,
    Expired,
}

/// What is kept of every voucher ever issued, so that a second redemption is told why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherRecord {
    pub funder: ParticipantId,
    pub beneficiary: ParticipantId,
    pub status: VoucherStatus,
}

/// A funder's totals: the regulator sees these aggregates, never one voucher's split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunderTotals {
    pub issued: u64,
    pub face_value_minor: u128,
    pub co_payment_minor: u128,
    pub redeemed: u64,
    pub redeemed_face_value_minor: u128,
    pub expired: u64,
}

impl FunderTotals {
    pub fn subsidy_minor(&self) -> u128 {
        self.face_value_minor - self.co_payment_minor
    }
}

#[derive(Clone, Debug, Default)]
pub struct Vouchers {
    pub packages: Vec<ServicePackage>,
    /// Every voucher ever issued, by id.
    pub records: Vec<VoucherRecord>,
    pub open: FxHashMap<VoucherId, Voucher>,
    /// Open vouchers by expiry. Derived from `open`.
    expiry: BTreeSet<(Timestamp, VoucherId)>,
    /// Per funder: cash reserved for vouchers redeemed and not yet settled by a netting cycle.
    pub backing_minor: BTreeMap<ParticipantId, u64>,
    pub totals: BTreeMap<ParticipantId, FunderTotals>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VouchersSnapshot {
    pub packages: Vec<ServicePackage>,
    pub records: Vec<VoucherRecord>,
    /// In id order.
    pub open: Vec<Voucher>,
    pub backing_minor: Vec<(ParticipantId, u64)>,
    pub totals: Vec<(ParticipantId, FunderTotals)>,
}

impl Vouchers {
    pub(crate) fn snapshot(&self) -> VouchersSnapshot {
        let mut open: Vec<Voucher> = self.open.values().copied().collect();
        open.sort_unstable_by_key(|voucher| voucher.id);
        VouchersSnapshot {
            packages: self.packages.clone(),
            records: self.records.clone(),
            open,
            backing_minor: self.backing_minor.iter().map(|(k, v)| (*k, *v)).collect(),
            totals: self.totals.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }

    pub(crate) fn restore(snapshot: VouchersSnapshot) -> Vouchers {
        let expiry = snapshot
            .open
            .iter()
            .map(|voucher| (voucher.expires_at, voucher.id))
            .collect();
        Vouchers {
            packages: snapshot.packages,
            records: snapshot.records,
            open: snapshot.open.into_iter().map(|v| (v.id, v)).collect(),
            expiry,
            backing_minor: snapshot.backing_minor.into_iter().collect(),
            totals: snapshot.totals.into_iter().collect(),
        }
    }

    /// The earliest open voucher due to expire at `now`, if any.
    pub(crate) fn next_due(&self, now: Timestamp) -> Option<VoucherId> {
        self.expiry
            .first()
            .filter(|(expires_at, _)| *expires_at <= now)
            .map(|(_, id)| *id)
    }

    pub(crate) fn expiry_len(&self) -> usize {
        self.expiry.len()
    }
}

impl Engine {
    pub(crate) fn define_service_package(
        &mut self,
        funder: ParticipantId,
        category: &str,
        name: &str,
        face_value_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let valid = category_is_valid(category)
            && !name.trim().is_empty()
            && name.len() <= self.config.name_bytes_max as usize
            && face_value_minor > 0;
        if !valid {
            return Err(RejectReason::PackageInvalid);
        }
        let packages = &mut self.social.vouchers.packages;
        if packages.len() >= self.config.service_packages_max as usize {
            return Err(RejectReason::VouchersFull);
        }
        let package = PackageId(packages.len() as u32);
        packages.push(ServicePackage {
            id: package,
            funder,
            category: category.to_string(),
            name: name.to_string(),
            face_value_minor,
        });
        events.push(Event::ServicePackageDefined {
            package,
            funder,
            category: category.to_string(),
            name: name.to_string(),
            face_value_minor,
        });
        Ok(Ack::ServicePackage(package))
    }

    pub(crate) fn issue_voucher(
        &mut self,
        funder: ParticipantId,
        package: PackageId,
        beneficiary: ParticipantId,
        co_payment_minor: u64,
        expires_at: Timestamp,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let package_terms = self
            .social
            .vouchers
            .packages
            .get(package.0 as usize)
            .ok_or(RejectReason::UnknownPackage)?;
        if package_terms.funder != funder {
            return Err(RejectReason::NotPackageFunder);
        }
        let face_value_minor = package_terms.face_value_minor;
        let beneficiary_account = self
            .participant(beneficiary)
            .ok_or(RejectReason::UnknownAccount)?;
        let validity_max = u64::from(self.config.voucher_validity_days_max) * NS_PER_DAY;
        let terms_ok = beneficiary_account.role == Role::Contributor
            && co_payment_minor <= face_value_minor
            && expires_at > self.now
            && expires_at - self.now <= validity_max;
        if !terms_ok {
            return Err(RejectReason::VoucherTermsInvalid);
        }
        let vouchers = &self.social.vouchers;
        if vouchers.records.len() as u64 >= self.config.vouchers_issued_max
            || vouchers.open.len() >= self.config.vouchers_open_max as usize
        {
            return Err(RejectReason::VouchersFull);
        }
        if self.participants[funder.0 as usize].cash.free_minor() < face_value_minor
            || beneficiary_account.cash.free_minor() < co_payment_minor
        {
            return Err(RejectReason::InsufficientCash);
        }
        self.participants[funder.0 as usize]
            .cash
            .reserve(face_value_minor)?;
        self.participants[beneficiary.0 as usize]
            .cash
            .reserve(co_payment_minor)?;
        let vouchers = &mut self.social.vouchers;
        let id = VoucherId(vouchers.records.len() as u64);
        vouchers.records.push(VoucherRecord {
            funder,
            beneficiary,
            status: VoucherStatus::Open,
        });
        vouchers.open.insert(
            id,
            Voucher {
                id,
                package,
                funder,
                beneficiary,
                face_value_minor,
                co_payment_minor,
                issued_at: self.now,
                expires_at,
            },
        );
        vouchers.expiry.insert((expires_at, id));
        let totals = vouchers.totals.entry(funder).or_default();
        totals.issued += 1;
        totals.face_value_minor += u128::from(face_value_minor);
        totals.co_payment_minor += u128::from(co_payment_minor);
        events.push(Event::VoucherIssued {
            voucher: id,
            package,
            funder,
            beneficiary,
            face_value_minor,
            expires_at,
        });
        events.push(Event::VoucherSplit {
            voucher: id,
            funder,
            beneficiary,
            co_payment_minor,
            subsidy_minor: face_value_minor - co_payment_minor,
        });
        Ok(Ack::Voucher(id))
    }

    pub(crate) fn redeem_voucher(
        &mut self,
        caller: ParticipantId,
        id: VoucherId,
        organization: ParticipantId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let record = *self
            .social
            .vouchers
            .records
            .get(id.0 as usize)
            .ok_or(RejectReason::UnknownVoucher)?;
        if record.beneficiary != caller {
            return Err(RejectReason::NotVoucherBeneficiary);
        }
        match record.status {
            VoucherStatus::Open => {}
            VoucherStatus::Redeemed => return Err(RejectReason::VoucherAlreadyRedeemed),
            VoucherStatus::Expired => return Err(RejectReason::VoucherExpired),
        }
        let voucher = self.social.vouchers.open[&id];
        self.accredited_organization(organization)?;
        let category = &self.social.vouchers.packages[voucher.package.0 as usize].category;
        if !self.accredited_for(organization, category) {
            return Err(RejectReason::NotAccreditedForCategory);
        }
        if self.now >= voucher.expires_at {
            return Err(RejectReason::VoucherExpired);
        }
        let funder = voucher.funder;
        let face_value_minor = voucher.face_value_minor;
        self.social
            .pool
            .check_obligation(funder, organization, face_value_minor)?;
        // The two legs of one redemption: the co-payment to the funder, whose reservation of the
        // whole face value now backs its obligation to the organization.
        self.participants[caller.0 as usize]
            .cash
            .pay_reserved(voucher.co_payment_minor);
        self.participants[funder.0 as usize]
            .cash
            .credit(voucher.co_payment_minor);
        let vouchers = &mut self.social.vouchers;
        vouchers.open.remove(&id);
        vouchers.expiry.remove(&(voucher.expires_at, id));
        vouchers.records[id.0 as usize].status = VoucherStatus::Redeemed;
        *vouchers.backing_minor.entry(funder).or_default() += face_value_minor;
        let totals = vouchers.totals.entry(funder).or_default();
        totals.redeemed += 1;
        totals.redeemed_face_value_minor += u128::from(face_value_minor);
        events.push(Event::VoucherRedeemed {
            voucher: id,
            package: voucher.package,
            beneficiary: caller,
            organization,
            face_value_minor,
        });
        self.record_obligation(
            funder,
            organization,
            face_value_minor,
            ObligationCause::Voucher(id),
            events,
        );
        Ok(Ack::Done)
    }

    /// Expires one open voucher that is due: both reservations are released.
    pub(crate) fn expire_voucher(&mut self, id: VoucherId, events: &mut Vec<Event>) {
        let vouchers = &mut self.social.vouchers;
        let voucher = vouchers.open.remove(&id).expect("a due voucher is open");
        vouchers.expiry.remove(&(voucher.expires_at, id));
        vouchers.records[id.0 as usize].status = VoucherStatus::Expired;
        vouchers.totals.entry(voucher.funder).or_default().expired += 1;
        self.participants[voucher.funder.0 as usize]
            .cash
            .release(voucher.face_value_minor);
        self.participants[voucher.beneficiary.0 as usize]
            .cash
            .release(voucher.co_payment_minor);
        events.push(Event::VoucherExpired {
            voucher: id,
            funder: voucher.funder,
            beneficiary: voucher.beneficiary,
            face_value_minor: voucher.face_value_minor,
        });
    }

    // ---- Read access. ----

    pub fn service_package(&self, id: PackageId) -> Option<&ServicePackage> {
        self.social.vouchers.packages.get(id.0 as usize)
    }

    pub fn service_packages(&self) -> &[ServicePackage] {
        &self.social.vouchers.packages
    }

    /// An open voucher, split included: callers show the split to its funder alone.
    pub fn open_voucher(&self, id: VoucherId) -> Option<&Voucher> {
        self.social.vouchers.open.get(&id)
    }

    pub fn voucher_record(&self, id: VoucherId) -> Option<VoucherRecord> {
        self.social.vouchers.records.get(id.0 as usize).copied()
    }

    /// Open vouchers, in no particular order.
    pub fn open_vouchers(&self) -> impl Iterator<Item = &Voucher> {
        self.social.vouchers.open.values()
    }

    pub fn vouchers_issued(&self) -> u64 {
        self.social.vouchers.records.len() as u64
    }

    pub fn funder_totals(&self) -> &BTreeMap<ParticipantId, FunderTotals> {
        &self.social.vouchers.totals
    }

    /// Cash a funder holds reserved for vouchers redeemed and not yet netted.
    pub fn voucher_backing_minor(&self, funder: ParticipantId) -> u64 {
        self.social
            .vouchers
            .backing_minor
            .get(&funder)
            .copied()
            .unwrap_or(0)
    }
}
