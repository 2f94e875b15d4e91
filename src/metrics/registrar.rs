//! Where a family is made: created and registered in one call, so that
//! each metric is named once, in its area's file.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::tally;

/// Creates a family and registers it, in one call. Names and help texts
/// are constants of the code: a malformed one or a name registered twice
/// is a programming error, caught by the first test that builds
/// [`Metrics`], hence the panics.
pub struct Registrar<'a> {
    registry: &'a Registry,
}

impl<'a> Registrar<'a> {
    pub(super) fn new(registry: &'a Registry) -> Self {
        Self { registry }
    }

    fn add<C: Collector + Clone + 'static>(&self, family: C) -> C {
        self.registry
            .register(Box::new(family.clone()))
            .expect("unique metric names");
        family
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(self.counter_unregistered(name, help))
    }

    pub fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(self.counters_unregistered(name, help, labels))
    }

    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("static metric"))
    }

    pub fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric"))
    }

    pub fn float_gauge(&self, name: &str, help: &str) -> prometheus::Gauge {
        self.add(prometheus::Gauge::new(name, help).expect("static metric"))
    }

    pub fn float_counter(&self, name: &str, help: &str) -> prometheus::Counter {
        self.add(prometheus::Counter::new(name, help).expect("static metric"))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        self.add(self.histogram_unregistered(name, help, buckets))
    }

    pub fn histograms(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, labels).expect("static metric"))
    }

    pub(super) fn counter_unregistered(&self, name: &str, help: &str) -> IntCounter {
        IntCounter::new(name, help).expect("static metric")
    }

    pub(super) fn counters_unregistered(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> IntCounterVec {
        IntCounterVec::new(Opts::new(name, help), labels).expect("static metric")
    }

    pub(super) fn histogram_unregistered(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        Histogram::with_opts(opts).expect("static metric")
    }

    /// Registers `family` wrapped so that a scrape adds the counts the hit
    /// path made in `tally`'s per-thread shards; returns `family` itself.
    pub(super) fn tallied<C: Collector + Clone + 'static>(
        &self,
        family: C,
        tally: &tally::Tally,
        which: tally::Family,
    ) -> C {
        let wrapped = tally::Tallied::new(Box::new(family.clone()), tally.clone(), which);
        self.registry
            .register(Box::new(wrapped))
            .expect("unique metric names");
        family
    }
}
