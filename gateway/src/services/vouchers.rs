//! `mutua.v1.Vouchers` and `mutua.v1.ServiceValue`: service packages, vouchers and their
//! redemption, and the service value of shares. The rules are the engine's
//! (`social/vouchers.rs`, `social/service_value.rs`); these handlers authenticate, convert, and
//! keep a voucher's co-payment split to its funder alone.

use std::ops::Bound;

use mutua_engine::{Ack, CommandKind, PackageId, ParticipantId, Role, VoucherId, VoucherStatus};
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::convert::{self, edge_status, EdgeReason};
use crate::pb;
use crate::services::{page_size, reads_everything, Shared};

pub struct VouchersService {
    shared: Shared,
}

impl VouchersService {
    pub(crate) fn new(shared: Shared) -> VouchersService {
        VouchersService { shared }
    }
}

fn status_to_pb(status: VoucherStatus) -> pb::VoucherStatus {
    match status {
        VoucherStatus::Open => pb::VoucherStatus::Open,
        VoucherStatus::Redeemed => pb::VoucherStatus::Redeemed,
        VoucherStatus::Expired => pb::VoucherStatus::Expired,
    }
}

/// A package name or category longer than the engine accepts is refused before it is journaled.
fn checked_package_text(field: &str, text: &str, bytes_max: usize) -> Result<(), Status> {
    if text.len() > bytes_max {
        return Err(convert::field_error(
            field,
            mutua_engine::RejectReason::PackageInvalid,
            format!("at most {bytes_max} bytes"),
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::vouchers_server::Vouchers for VouchersService {
    async fn define_service_package(
        &self,
        request: Request<pb::DefineServicePackageRequest>,
    ) -> Result<Response<pb::DefineServicePackageResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let category_max = mutua_engine::social::CATEGORY_BYTES_MAX;
        checked_package_text("category", &request.category, category_max)?;
        checked_package_text("name", &request.name, convert::name_bytes_max())?;
        let kind = CommandKind::DefineServicePackage {
            package: Box::new(mutua_engine::PackageTerms {
                category: request.category,
                name: request.name,
                face_value_minor: convert::cash_minor("face_value", &request.face_value, scale)?,
            }),
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        let Ack::ServicePackage(package) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "a service package"));
        };
        Ok(Response::new(pb::DefineServicePackageResponse {
            commit: Some(convert::commit(&applied)),
            package_id: package.0,
        }))
    }

    async fn issue_voucher(
        &self,
        request: Request<pb::IssueVoucherRequest>,
    ) -> Result<Response<pb::IssueVoucherResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let co_payment_minor = if convert::is_none_amount(&request.co_payment) {
            0
        } else {
            convert::cash_minor("co_payment", &request.co_payment, scale)?
        };
        let kind = CommandKind::IssueVoucher {
            package: PackageId(request.package_id),
            beneficiary: ParticipantId(request.beneficiary_id),
            co_payment_minor,
            expires_at: request.expires_at_ns,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        let Ack::Voucher(voucher) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "a voucher"));
        };
        Ok(Response::new(pb::IssueVoucherResponse {
            commit: Some(convert::commit(&applied)),
            voucher_id: voucher.0,
        }))
    }

    async fn redeem_voucher(
        &self,
        request: Request<pb::RedeemVoucherRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::RedeemVoucher {
            voucher: VoucherId(request.voucher_id),
            organization: ParticipantId(request.organization_id),
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn get_voucher(
        &self,
        request: Request<pb::GetVoucherRequest>,
    ) -> Result<Response<pb::Voucher>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let id = VoucherId(request.into_inner().voucher_id);
        let scale = self.shared.catalog.currency_scale().await?;
        let found = self
            .shared
            .query(move |engine| {
                let record = engine.voucher_record(id)?;
                Some((record, engine.open_voucher(id).copied()))
            })
            .await?;
        let not_found =
            || convert::field_rejection("voucher_id", mutua_engine::RejectReason::UnknownVoucher);
        let Some((record, open)) = found else {
            return Err(not_found());
        };
        let is_funder = caller.participant == record.funder;
        let may_read =
            is_funder || caller.participant == record.beneficiary || reads_everything(caller);
        if !may_read {
            // Indistinguishable from an unknown id: a voucher's existence is its parties' business.
            return Err(not_found());
        }
        let cash = |minor| convert::cash_text(minor, scale);
        let mut voucher = pb::Voucher {
            voucher_id: id.0,
            status: status_to_pb(record.status) as i32,
            beneficiary_id: record.beneficiary.0,
            funder_id: record.funder.0,
            ..Default::default()
        };
        if let Some(open) = open {
            voucher.package_id = open.package.0;
            voucher.face_value = cash(open.face_value_minor);
            voucher.expires_at_ns = open.expires_at;
            if is_funder {
                voucher.co_payment = Some(cash(open.co_payment_minor));
                voucher.subsidy = Some(cash(open.face_value_minor - open.co_payment_minor));
            }
        }
        Ok(Response::new(voucher))
    }

    async fn list_service_packages(
        &self,
        request: Request<pb::ListServicePackagesRequest>,
    ) -> Result<Response<pb::ListServicePackagesResponse>, Status> {
        self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let limit = page_size("limit", request.limit)?;
        let after = request.after_package_id;
        let scale = self.shared.catalog.currency_scale().await?;
        let packages = self
            .shared
            .query(move |engine| {
                engine
                    .service_packages()
                    .iter()
                    .skip(after.map_or(0, |after| after as usize + 1))
                    .take(limit)
                    .map(|package| pb::ServicePackage {
                        package_id: package.id.0,
                        funder_id: package.funder.0,
                        category: package.category.clone(),
                        name: package.name.clone(),
                        face_value: convert::cash_text(package.face_value_minor, scale),
                    })
                    .collect()
            })
            .await?;
        Ok(Response::new(pb::ListServicePackagesResponse { packages }))
    }

    async fn voucher_totals(
        &self,
        request: Request<pb::VoucherTotalsRequest>,
    ) -> Result<Response<pb::VoucherTotalsResponse>, Status> {
        let caller: Caller = self.shared.auth.authenticate(&request)?;
        if !(caller.role == Role::Funder || reads_everything(caller)) {
            return Err(edge_status(
                EdgeReason::NotPermitted,
                "only a funder (its own), a regulator or the operator may read voucher totals",
            ));
        }
        let request = request.into_inner();
        let limit = page_size("limit", request.limit)?;
        let after = request.after_funder_id;
        let scale = self.shared.catalog.currency_scale().await?;
        let only = (caller.role == Role::Funder).then_some(caller.participant);
        let totals = self
            .shared
            .query(move |engine| {
                let first = after.map_or(Bound::Unbounded, |after| {
                    Bound::Excluded(ParticipantId(after))
                });
                engine
                    .funder_totals()
                    .range((first, Bound::Unbounded))
                    .filter(|(funder, _)| only.is_none_or(|only| only == **funder))
                    .take(limit)
                    .map(|(funder, totals)| (*funder, *totals))
                    .collect::<Vec<_>>()
            })
            .await?;
        let cash = |minor: u128| convert::wide_cash_text(minor, scale);
        let funders = totals
            .into_iter()
            .map(|(funder, totals)| pb::FunderTotals {
                funder_id: funder.0,
                issued: totals.issued,
                face_value: cash(totals.face_value_minor),
                co_payment: cash(totals.co_payment_minor),
                subsidy: cash(totals.subsidy_minor()),
                redeemed: totals.redeemed,
                redeemed_face_value: cash(totals.redeemed_face_value_minor),
                expired: totals.expired,
            })
            .collect();
        Ok(Response::new(pb::VoucherTotalsResponse { funders }))
    }
}

pub struct ServiceValueService {
    shared: Shared,
}

impl ServiceValueService {
    pub(crate) fn new(shared: Shared) -> ServiceValueService {
        ServiceValueService { shared }
    }
}

#[tonic::async_trait]
impl pb::service_value_server::ServiceValue for ServiceValueService {
    async fn redeem_service_value(
        &self,
        request: Request<pb::RedeemServiceValueRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let kind = CommandKind::RedeemServiceValue {
            instrument: units.id,
            organization: ParticipantId(request.organization_id),
            amount_minor: convert::cash_minor("amount", &request.amount, units.currency_scale)?,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }
}
