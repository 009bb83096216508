//! A gateway-side cache of what never changes once listed: the market's currency scale and each
//! instrument's symbol, tick and lot. Handlers need these to turn decimal strings into ticks and
//! lots before a command reaches the engine; caching them saves a query to the read replica for
//! every order but the first in each instrument.
//!
//! Safe because the engine never delists, renumbers or re-terms an instrument. The cache holds at
//! most one entry per listed instrument, so the engine's `instruments_max` bounds it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mutua_engine::{InstrumentId, RejectReason};
use tonic::Status;

use crate::convert::{self, InstrumentUnits};
use crate::pb;
use crate::sequencer::Sequencer;
use crate::services::sequencer_status;

#[derive(Clone)]
pub struct Catalog {
    sequencer: Sequencer,
    known: Arc<RwLock<Known>>,
}

#[derive(Default)]
struct Known {
    currency_scale: Option<u32>,
    by_id: HashMap<InstrumentId, Arc<InstrumentUnits>>,
    by_symbol: HashMap<String, InstrumentId>,
}

impl Catalog {
    pub fn new(sequencer: Sequencer) -> Catalog {
        Catalog {
            sequencer,
            known: Arc::new(RwLock::new(Known::default())),
        }
    }

    /// Decimal places of the market's currency.
    pub async fn currency_scale(&self) -> Result<u32, Status> {
        if let Some(scale) = self.read()?.currency_scale {
            return Ok(scale);
        }
        let scale = self
            .sequencer
            .query(|engine| engine.config().currency_scale)
            .await
            .map_err(sequencer_status)?;
        self.write()?.currency_scale = Some(scale);
        Ok(scale)
    }

    /// The units of a listed instrument, or `None` if no instrument has this id.
    pub async fn units(&self, id: InstrumentId) -> Result<Option<Arc<InstrumentUnits>>, Status> {
        if let Some(units) = self.read()?.by_id.get(&id) {
            return Ok(Some(units.clone()));
        }
        let found = self
            .sequencer
            .query(move |engine| {
                engine.instrument(id).map(|instrument| {
                    InstrumentUnits::of(instrument, engine.config().currency_scale)
                })
            })
            .await
            .map_err(sequencer_status)?;
        Ok(found.map(|units| self.remember(units)))
    }

    /// The instrument a request names, by id or by symbol; NOT_FOUND naming `field` if none.
    pub async fn resolve(
        &self,
        reference: Option<&pb::InstrumentRef>,
        field: &str,
    ) -> Result<Arc<InstrumentUnits>, Status> {
        use pb::instrument_ref::Instrument as Named;
        let unknown = || convert::field_rejection(field, RejectReason::UnknownInstrument);
        match reference.and_then(|reference| reference.instrument.as_ref()) {
            None => Err(crate::convert::invalid_field(format!(
                "{field}: required (an id or a symbol)"
            ))),
            Some(Named::Id(id)) => self.units(InstrumentId(*id)).await?.ok_or_else(unknown),
            Some(Named::Symbol(symbol)) => {
                convert::checked_symbol(field, symbol)?;
                let cached = self.read()?.by_symbol.get(symbol).copied();
                if let Some(id) = cached {
                    return self.units(id).await?.ok_or_else(unknown);
                }
                let symbol = symbol.clone();
                let found = self
                    .sequencer
                    .query(move |engine| {
                        engine.instrument_by_symbol(&symbol).map(|instrument| {
                            InstrumentUnits::of(instrument, engine.config().currency_scale)
                        })
                    })
                    .await
                    .map_err(sequencer_status)?;
                found.map(|units| self.remember(units)).ok_or_else(unknown)
            }
        }
    }

    fn remember(&self, units: InstrumentUnits) -> Arc<InstrumentUnits> {
        let units = Arc::new(units);
        if let Ok(mut known) = self.known.write() {
            known.currency_scale = Some(units.currency_scale);
            known.by_symbol.insert(units.symbol.clone(), units.id);
            known.by_id.insert(units.id, units.clone());
        }
        units
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Known>, Status> {
        self.known
            .read()
            .map_err(|_| Status::internal("instrument cache poisoned"))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Known>, Status> {
        self.known
            .write()
            .map_err(|_| Status::internal("instrument cache poisoned"))
    }
}
