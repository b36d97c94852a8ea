//! The Metrics API's `Meter` and its seven instrument kinds. A synchronous measurement
//! (`add`, `record`, `set`) is one native call: attributes converted, the span the
//! measurement was made in looked up only when an exemplar may be kept, and aggregated in
//! Rust ([`ferrotel_sdk::metrics`]). Observable instruments keep their callbacks, which a
//! collection ([`super::provider`]) runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferrotel_config::LogLevel;
use ferrotel_sdk::metrics::{
    valid_instrument_name, Boundary, Descriptor, ExemplarFilter, Instrument, InstrumentKind, MeasuredIn, Number,
};
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::sync::lock;
use pyo3::prelude::*;

use super::core::{InstrumentKey, MeterCore};
use super::observation::number;
use crate::boundary::value;
use crate::runtime::diagnostics::emit;
use crate::trace::current::ids_in;

/// The current span, for the exemplar filter; not looked up when no exemplar is kept.
fn current_span(py: Python<'_>, instrument: &Instrument) -> Option<MeasuredIn> {
    if instrument.exemplar_filter == ExemplarFilter::AlwaysOff {
        return None;
    }
    ids_in(py, None).ok().flatten().map(|ids| ids.measured_in())
}

#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct Meter {
    pub(super) core: Arc<MeterCore>,
    pub(super) scope: Arc<Scope>,
}

/// What the API's `create_*` calls describe.
struct InstrumentSpec<'a> {
    name: &'a str,
    unit: &'a str,
    description: &'a str,
    kind: InstrumentKind,
    /// The advisory explicit bucket boundaries, for histograms.
    boundaries: Option<Vec<Boundary>>,
}

impl Meter {
    /// The instrument `spec` describes, created on first request (asking again gives the
    /// same one, as the API requires); observable ones gain `callbacks`. An invalid name gets
    /// one warning and an instrument that records nothing, as the API asks.
    fn instrument(
        &self,
        py: Python<'_>,
        spec: InstrumentSpec<'_>,
        callbacks: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Arc<Instrument>>> {
        if !valid_instrument_name(spec.name) {
            emit(
                py,
                LogLevel::Warning,
                &format!(
                    "{:?} is not a valid instrument name (a letter, then up to 254 of letters, digits, _ . - /); \
                     it records nothing",
                    spec.name
                ),
            );
            return Ok(None);
        }
        let key = InstrumentKey {
            scope_name: self.scope.name.clone(),
            scope_version: self.scope.version.clone().unwrap_or_default(),
            name: spec.name.to_ascii_lowercase(),
            kind: spec.kind,
        };
        // The instruments' lock first, as a reader being added takes them.
        let mut instruments = lock(&self.core.instruments);
        let slots = self.core.slots(spec.kind);
        let entry = instruments.get_or_insert(key, slots, |slots| {
            let descriptor = Descriptor {
                name: spec.name.to_owned(),
                description: spec.description.to_owned(),
                unit: spec.unit.to_owned(),
                kind: spec.kind,
                scope: self.scope.clone(),
                advisory: spec.boundaries,
            };
            Instrument::with_views(descriptor, self.core.reader.exemplar_filter, slots, &self.core.views)
        });
        drop(instruments);
        let mut entry = lock(&entry);
        if let Some(callbacks) = callbacks.filter(|c| !c.is_none()) {
            for callback in callbacks.try_iter()? {
                entry.callbacks.push(callback?.unbind());
            }
        }
        Ok(Some(entry.instrument.clone()))
    }

    fn observable(
        &self,
        py: Python<'_>,
        spec: InstrumentSpec<'_>,
        callbacks: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ObservableInstrument> {
        let instrument = self.instrument(py, spec, callbacks)?;
        Ok(ObservableInstrument { instrument })
    }

    fn synchronous(&self, py: Python<'_>, spec: InstrumentSpec<'_>) -> PyResult<Option<Arc<Instrument>>> {
        self.instrument(py, spec, None)
    }
}

macro_rules! synchronous_instrument {
    ($class:ident, $method:ident, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(frozen, module = "ferrotel._native")]
        pub(crate) struct $class {
            pub(crate) instrument: Option<Arc<Instrument>>,
            /// Said once: a counter or histogram given a negative amount.
            warned: AtomicBool,
        }

        impl $class {
            fn new(instrument: Option<Arc<Instrument>>) -> $class {
                $class {
                    instrument,
                    warned: AtomicBool::new(false),
                }
            }
        }

        #[pymethods]
        impl $class {
            #[pyo3(signature = (amount, attributes=None, context=None))]
            fn $method(
                &self,
                py: Python<'_>,
                amount: &Bound<'_, PyAny>,
                attributes: Option<&Bound<'_, PyAny>>,
                context: Option<&Bound<'_, PyAny>>,
            ) {
                let _ = context;
                let Some(instrument) = &self.instrument else {
                    return;
                };
                let Some(value) = number(amount) else { return };
                // Counters only go up and histograms take non-negative values (the API says
                // so, and upstream's SDK drops the others too).
                let monotonic = matches!($kind, InstrumentKind::Counter | InstrumentKind::Histogram);
                if monotonic && value.as_f64() < 0.0 {
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        let what = if $kind == InstrumentKind::Counter {
                            "counter"
                        } else {
                            "histogram"
                        };
                        emit(
                            py,
                            LogLevel::Warning,
                            &format!(
                                "{what} {} was given a negative amount; such amounts are dropped",
                                instrument.name
                            ),
                        );
                    }
                    return;
                }
                let span = current_span(py, instrument);
                instrument.record_in(
                    value,
                    value::flat_attributes(attributes),
                    ferrotel_sdk::now_ns(),
                    span,
                );
            }

            #[getter]
            fn name(&self) -> &str {
                self.instrument.as_ref().map_or("", |i| i.name.as_str())
            }
        }
    };
}

synchronous_instrument!(
    Counter,
    add,
    InstrumentKind::Counter,
    "A monotonic sum: `add(amount >= 0, attributes)`."
);
synchronous_instrument!(
    UpDownCounter,
    add,
    InstrumentKind::UpDownCounter,
    "A sum that may go down."
);
synchronous_instrument!(
    Histogram,
    record,
    InstrumentKind::Histogram,
    "A distribution in explicit buckets."
);
synchronous_instrument!(Gauge, set, InstrumentKind::Gauge, "The last value set.");

/// An observable instrument: its callbacks report values at each collection.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct ObservableInstrument {
    instrument: Option<Arc<Instrument>>,
}

#[pymethods]
impl ObservableInstrument {
    #[getter]
    fn name(&self) -> &str {
        self.instrument.as_ref().map_or("", |i| i.name.as_str())
    }
}

/// The Meter's Python methods. The three observable creators differ only in their kind, so
/// they are generated from one template.
macro_rules! meter_methods {
    ($($create:ident => $kind:expr),* $(,)?) => {
        #[pymethods]
        impl Meter {
        #[getter]
        fn name(&self) -> &str {
            &self.scope.name
        }

        #[pyo3(signature = (name, unit="", description=""))]
        fn create_counter(&self, py: Python<'_>, name: &str, unit: &str, description: &str) -> PyResult<Counter> {
            let spec = InstrumentSpec {
                name,
                unit,
                description,
                kind: InstrumentKind::Counter,
                boundaries: None,
            };
            Ok(Counter::new(self.synchronous(py, spec)?))
        }

        #[pyo3(signature = (name, unit="", description=""))]
        fn create_up_down_counter(
            &self,
            py: Python<'_>,
            name: &str,
            unit: &str,
            description: &str,
        ) -> PyResult<UpDownCounter> {
            let spec = InstrumentSpec {
                name,
                unit,
                description,
                kind: InstrumentKind::UpDownCounter,
                boundaries: None,
            };
            Ok(UpDownCounter::new(self.synchronous(py, spec)?))
        }

        #[pyo3(signature = (name, unit="", description="", *, explicit_bucket_boundaries_advisory=None))]
        fn create_histogram(
            &self,
            py: Python<'_>,
            name: &str,
            unit: &str,
            description: &str,
            explicit_bucket_boundaries_advisory: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Histogram> {
            let spec = InstrumentSpec {
                name,
                unit,
                description,
                kind: InstrumentKind::Histogram,
                boundaries: advisory_boundaries(py, name, explicit_bucket_boundaries_advisory),
            };
            Ok(Histogram::new(self.synchronous(py, spec)?))
        }

        #[pyo3(signature = (name, unit="", description=""))]
        fn create_gauge(&self, py: Python<'_>, name: &str, unit: &str, description: &str) -> PyResult<Gauge> {
            let spec = InstrumentSpec {
                name,
                unit,
                description,
                kind: InstrumentKind::Gauge,
                boundaries: None,
            };
            Ok(Gauge::new(self.synchronous(py, spec)?))
        }

            $(
                #[pyo3(signature = (name, callbacks=None, unit="", description=""))]
                fn $create(
                    &self,
                    py: Python<'_>,
                    name: &str,
                    callbacks: Option<&Bound<'_, PyAny>>,
                    unit: &str,
                    description: &str,
                ) -> PyResult<ObservableInstrument> {
                    self.observable(py, observable_spec(name, unit, description, $kind), callbacks)
                }
            )*
        }
    };
}

meter_methods!(
    create_observable_counter => InstrumentKind::ObservableCounter,
    create_observable_up_down_counter => InstrumentKind::ObservableUpDownCounter,
    create_observable_gauge => InstrumentKind::ObservableGauge,
);

/// The advisory bucket boundaries, each remembered as written (an `int` or a `float`); a
/// value that is not a number gets one warning and the default boundaries, as upstream does.
fn advisory_boundaries(py: Python<'_>, name: &str, advisory: Option<&Bound<'_, PyAny>>) -> Option<Vec<Boundary>> {
    let advisory = advisory.filter(|a| !a.is_none())?;
    let boundaries: Option<Vec<Boundary>> = advisory.try_iter().ok().and_then(|items| {
        items
            .map(|item| {
                let item = item.ok()?;
                let value = number(&item)?;
                Some(Boundary {
                    value: value.as_f64(),
                    integral: matches!(value, Number::Int(_)),
                })
            })
            .collect()
    });
    if boundaries.is_none() {
        emit(
            py,
            LogLevel::Warning,
            &format!(
                "histogram {name}: the advisory bucket boundaries are not a list of numbers; the defaults are used"
            ),
        );
    }
    boundaries
}

fn observable_spec<'a>(name: &'a str, unit: &'a str, description: &'a str, kind: InstrumentKind) -> InstrumentSpec<'a> {
    InstrumentSpec {
        name,
        unit,
        description,
        kind,
        boundaries: None,
    }
}
