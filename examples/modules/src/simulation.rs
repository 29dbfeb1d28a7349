//! The copilot's simulation flow (`ai:simulation:run`): an event's ticket sales and P&L as a seeded Monte
//! Carlo — capacity, price tiers, the expected sell-through and its spread, the shape of the sales curve,
//! fixed and per-ticket costs, and an optional exchange rate with its volatility — reported as
//! percentiles, with a plain-language explanation. The same inputs and seed give the same answer, on any
//! machine and in any version of this module: the generator is written here (SplitMix64 and the
//! Box–Muller transform) rather than taken from a crate whose algorithms may change between releases.

use serde::{Deserialize, Serialize};

use kisum_client::server::ApiError;

/// Runs at most (and the default).
pub(crate) const MAX_RUNS: u32 = 100_000;
const DEFAULT_RUNS: u32 = 10_000;
/// How much each tier's sell-through strays from the event's, as a share of the spread.
const TIER_SPREAD: f64 = 0.5;
/// Points of the sales curve reported.
const CURVE_POINTS: u32 = 10;

/// What to simulate (every amount in minor units of `currency`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Inputs {
    /// Seats on sale, 1 to 1,000,000.
    pub capacity: u64,
    /// The price tiers: each takes `share` of the capacity.
    pub tiers: Vec<Tier>,
    /// ISO 4217 code of the prices and costs.
    pub currency: String,
    /// Costs however many sell (guarantee, venue, production).
    pub fixed_costs: u64,
    /// Costs per ticket sold (fees, staffing).
    #[serde(default)]
    pub variable_cost: u64,
    /// The share of seats expected to sell, and how uncertain that is.
    pub sell_through: SellThrough,
    /// How sales spread over the days on sale: `early`, `steady` (default) or `late`.
    #[serde(default)]
    pub curve: Curve,
    /// Days on sale, 1 to 730.
    pub days_on_sale: u32,
    /// The P&L in another currency too.
    #[serde(default)]
    pub fx: Option<Fx>,
    /// Runs, 1 to 100,000 (default 10,000).
    #[serde(default)]
    pub runs: Option<u32>,
    /// The generator's seed (default 1): the same inputs and seed give the same answer.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A price tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tier {
    /// Its name (`GA`, `VIP`).
    pub name: String,
    /// Price per ticket, minor units.
    pub price: u64,
    /// Its share of the capacity, above 0 and at most 1; the shares add up to at most 1.
    pub share: f64,
}

/// The expected sell-through (0 to 1) and its standard deviation (0 to 1).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SellThrough {
    /// The share of seats expected to sell.
    pub mean: f64,
    /// Its standard deviation.
    pub spread: f64,
}

/// The shape of cumulative sales over the days on sale: the share sold after a fraction `t` of them is
/// `t^k`, with `k` ½, 1 or 2.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Curve {
    /// Most tickets sell soon after the on-sale.
    Early,
    /// Sales come evenly.
    #[default]
    Steady,
    /// Most tickets sell in the last days.
    Late,
}

impl Curve {
    fn exponent(self) -> f64 {
        match self {
            Curve::Early => 0.5,
            Curve::Steady => 1.0,
            Curve::Late => 2.0,
        }
    }
}

/// A second currency for the P&L: `rate` units of it per unit of the event's currency, drifting with
/// `volatility` (the standard deviation of its logarithm over the sale).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fx {
    /// ISO 4217 code.
    pub currency: String,
    /// Above 0.
    pub rate: f64,
    /// 0 to 1.
    #[serde(default)]
    pub volatility: f64,
}

/// Percentiles of one quantity over the runs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Spread {
    pub p5: i64,
    pub p50: i64,
    pub p95: i64,
    pub mean: i64,
}

/// One point of the sales curve: tickets sold by `day` (percentiles over the runs).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct CurvePoint {
    pub day: u32,
    pub p5: i64,
    pub p50: i64,
    pub p95: i64,
}

/// What the simulation found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Outcome {
    pub runs: u32,
    pub seed: u64,
    pub currency: String,
    pub tickets: Spread,
    pub revenue: Spread,
    pub costs: Spread,
    pub profit: Spread,
    /// The share of runs that lost money.
    pub loss_probability: f64,
    /// Tickets to sell (at the tiers' average price) for revenue to cover the costs; `None` when no
    /// number of them would.
    pub break_even_tickets: Option<u64>,
    pub sales_curve: Vec<CurvePoint>,
    /// The profit in the second currency, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fx: Option<FxOutcome>,
}

/// The profit in a second currency.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct FxOutcome {
    pub currency: String,
    pub profit: Spread,
}

impl Inputs {
    /// Refuses what cannot be simulated, naming the field (a JSON pointer) and the rule.
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        if !(1..=1_000_000).contains(&self.capacity) {
            return Err(ApiError::invalid("/capacity", "must be 1 to 1,000,000 seats"));
        }
        if self.tiers.is_empty() || self.tiers.len() > 10 {
            return Err(ApiError::invalid("/tiers", "must name 1 to 10 price tiers"));
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            let name = tier.name.trim();
            if name.is_empty() || name.chars().count() > 50 {
                return Err(ApiError::invalid(&format!("/tiers/{i}/name"), "must be 1 to 50 characters"));
            }
            if tier.price > 1_000_000_000 {
                return Err(ApiError::invalid(&format!("/tiers/{i}/price"), "must be at most 1,000,000,000"));
            }
            if !(tier.share > 0.0 && tier.share <= 1.0) {
                return Err(ApiError::invalid(&format!("/tiers/{i}/share"), "must be above 0 and at most 1"));
            }
        }
        if self.tiers.iter().map(|t| t.share).sum::<f64>() > 1.0 + 1e-9 {
            return Err(ApiError::invalid("/tiers", "the shares of the capacity add up to more than 1"));
        }
        if !is_currency(&self.currency) {
            return Err(ApiError::invalid("/currency", "must be an ISO 4217 code such as EUR"));
        }
        if self.fixed_costs > 10_000_000_000_000 {
            return Err(ApiError::invalid("/fixed_costs", "must be at most 10,000,000,000,000"));
        }
        if self.variable_cost > 1_000_000_000 {
            return Err(ApiError::invalid("/variable_cost", "must be at most 1,000,000,000"));
        }
        let SellThrough { mean, spread } = self.sell_through;
        if !(0.0..=1.0).contains(&mean) {
            return Err(ApiError::invalid("/sell_through/mean", "must be 0 to 1"));
        }
        if !(0.0..=1.0).contains(&spread) {
            return Err(ApiError::invalid("/sell_through/spread", "must be 0 to 1"));
        }
        if !(1..=730).contains(&self.days_on_sale) {
            return Err(ApiError::invalid("/days_on_sale", "must be 1 to 730 days"));
        }
        if let Some(fx) = &self.fx {
            if !is_currency(&fx.currency) {
                return Err(ApiError::invalid("/fx/currency", "must be an ISO 4217 code such as USD"));
            }
            if !(fx.rate > 0.0 && fx.rate <= 1_000_000.0) {
                return Err(ApiError::invalid("/fx/rate", "must be above 0 and at most 1,000,000"));
            }
            if !(0.0..=1.0).contains(&fx.volatility) {
                return Err(ApiError::invalid("/fx/volatility", "must be 0 to 1"));
            }
        }
        if let Some(runs) = self.runs
            && !(1..=MAX_RUNS).contains(&runs)
        {
            return Err(ApiError::invalid("/runs", format!("must be 1 to {MAX_RUNS}")));
        }
        Ok(())
    }
}

fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Runs the simulation of `inputs` (validated).
pub(crate) fn simulate(inputs: &Inputs) -> Outcome {
    let runs = inputs.runs.unwrap_or(DEFAULT_RUNS).clamp(1, MAX_RUNS);
    let seed = inputs.seed.unwrap_or(1);
    let mut rng = Rng::new(seed);
    let capacity = inputs.capacity as f64;
    let SellThrough { mean, spread } = inputs.sell_through;
    let n = runs as usize;
    let (mut tickets, mut revenue, mut costs, mut profit) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut fx_profit = Vec::with_capacity(if inputs.fx.is_some() { n } else { 0 });
    for _ in 0..runs {
        let event = (mean + spread * rng.normal()).clamp(0.0, 1.0);
        let (mut sold, mut takings) = (0u64, 0i128);
        for tier in &inputs.tiers {
            let seats = (capacity * tier.share).floor();
            let share = (event + spread * TIER_SPREAD * rng.normal()).clamp(0.0, 1.0);
            // Whole tickets, never more than the tier's seats.
            let n = (seats * share).floor() as u64;
            sold += n;
            takings += i128::from(n) * i128::from(tier.price);
        }
        let spent = i128::from(inputs.fixed_costs) + i128::from(sold) * i128::from(inputs.variable_cost);
        let gain = takings - spent;
        tickets.push(sold as i64);
        revenue.push(saturate(takings));
        costs.push(saturate(spent));
        profit.push(saturate(gain));
        if let Some(fx) = &inputs.fx {
            // A lognormal drift whose mean is the quoted rate.
            let rate = fx.rate * (fx.volatility * rng.normal() - fx.volatility * fx.volatility / 2.0).exp();
            fx_profit.push((gain as f64 * rate).round() as i64);
        }
    }
    let losses = profit.iter().filter(|p| **p < 0).count();
    let tickets_spread = spread_of(&mut tickets);
    let k = inputs.curve.exponent();
    let sales_curve = (0..=CURVE_POINTS)
        .map(|i| {
            let day = (u64::from(inputs.days_on_sale) * u64::from(i) / u64::from(CURVE_POINTS)) as u32;
            let sold_by = (f64::from(day) / f64::from(inputs.days_on_sale)).powf(k);
            let at = |n: i64| (n as f64 * sold_by).round() as i64;
            CurvePoint { day, p5: at(tickets_spread.p5), p50: at(tickets_spread.p50), p95: at(tickets_spread.p95) }
        })
        .collect();
    Outcome {
        runs,
        seed,
        currency: inputs.currency.clone(),
        tickets: tickets_spread,
        revenue: spread_of(&mut revenue),
        costs: spread_of(&mut costs),
        profit: spread_of(&mut profit),
        loss_probability: losses as f64 / f64::from(runs),
        break_even_tickets: break_even(inputs),
        sales_curve,
        fx: inputs.fx.as_ref().map(|fx| FxOutcome { currency: fx.currency.clone(), profit: spread_of(&mut fx_profit) }),
    }
}

/// Tickets at the tiers' average price (weighted by their shares) to cover the fixed costs.
fn break_even(inputs: &Inputs) -> Option<u64> {
    let shares: f64 = inputs.tiers.iter().map(|t| t.share).sum();
    let average = inputs.tiers.iter().map(|t| t.price as f64 * t.share).sum::<f64>() / shares;
    let margin = average - inputs.variable_cost as f64;
    if margin <= 0.0 {
        return None;
    }
    let needed = (inputs.fixed_costs as f64 / margin).ceil();
    (needed <= (inputs.capacity as f64 * shares).floor()).then_some(needed as u64)
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// The 5th, 50th and 95th percentiles (nearest rank) and the mean of `values` (sorted in place).
fn spread_of(values: &mut [i64]) -> Spread {
    values.sort_unstable();
    let rank = |p: f64| -> i64 {
        if values.is_empty() {
            return 0;
        }
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values.get(i).copied().unwrap_or(0)
    };
    let mean = if values.is_empty() {
        0
    } else {
        (values.iter().map(|v| i128::from(*v)).sum::<i128>() / values.len() as i128) as i64
    };
    Spread { p5: rank(0.05), p50: rank(0.50), p95: rank(0.95), mean }
}

/// The answer's explanation: what was assumed and what came out, in words.
pub(crate) fn explain(inputs: &Inputs, outcome: &Outcome) -> String {
    let money = |minor: i64| format!("{} {:.2}", outcome.currency, minor as f64 / 100.0);
    let sold = |n: i64| 100.0 * n as f64 / inputs.capacity as f64;
    let curve = match inputs.curve {
        Curve::Early => "front-loaded (half the tickets sell in the first quarter of the sale)",
        Curve::Steady => "steady (sales come evenly over the sale)",
        Curve::Late => "late (half the tickets sell in the last 30% of the sale)",
    };
    let mut text = format!(
        "Across {} runs (seed {}), {} seats in {} tier(s), expecting {:.0}% sell-through ± {:.0} points: \
         tickets sold {} / {} / {} at the 5th / 50th / 95th percentile ({:.0}% / {:.0}% / {:.0}% of \
         capacity); revenue {} at the median; profit {} / {} / {}. ",
        outcome.runs,
        outcome.seed,
        inputs.capacity,
        inputs.tiers.len(),
        100.0 * inputs.sell_through.mean,
        100.0 * inputs.sell_through.spread,
        outcome.tickets.p5,
        outcome.tickets.p50,
        outcome.tickets.p95,
        sold(outcome.tickets.p5),
        sold(outcome.tickets.p50),
        sold(outcome.tickets.p95),
        money(outcome.revenue.p50),
        money(outcome.profit.p5),
        money(outcome.profit.p50),
        money(outcome.profit.p95),
    );
    text.push_str(&format!("The event loses money in {:.1}% of the runs; ", 100.0 * outcome.loss_probability));
    match outcome.break_even_tickets {
        Some(n) => text.push_str(&format!("it breaks even at {n} tickets at the tiers' average price. ")),
        None => text.push_str("no sell-out covers the costs at these prices. "),
    }
    text.push_str(&format!("Sales are assumed {curve} over {} days on sale.", inputs.days_on_sale));
    if let Some(fx) = &outcome.fx {
        text.push_str(&format!(
            " In {}: median profit {:.2}, 5th percentile {:.2}.",
            fx.currency,
            fx.profit.p50 as f64 / 100.0,
            fx.profit.p5 as f64 / 100.0
        ));
    }
    text.push_str(" The same inputs and seed give the same figures.");
    text
}

/// SplitMix64 (Steele, Lea and Flood, 2014): 64 bits per step from a 64-bit state; fixed here so that a
/// seed means the same runs forever.
pub(crate) struct Rng {
    state: u64,
    /// The second normal of the last Box–Muller pair.
    spare: Option<f64>,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed, spare: None }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: 53 random bits, never 0 (the logarithm below needs that).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal (Box–Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let radius = (-2.0 * u.ln()).sqrt();
        let angle = std::f64::consts::TAU * v;
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}
