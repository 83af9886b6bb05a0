//! Exact running totals and the last 100 requests, for `/gateway/metrics`.

use super::FinishedRequest;
use crate::pricing::{BillableTokens, Money};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

/// How many requests `recent` keeps.
const RECENT: usize = 100;
/// Most distinct keys a `by_*` map holds; the rest are summed under `other`.
const MAX_KEYS: usize = 1000;

#[derive(Default)]
pub(crate) struct Summary {
    total_requests: u64,
    unpriced_requests: u64,
    total_cost: Money,
    input_tokens: u64,
    output_tokens: u64,
    cache_write_tokens: u64,
    cache_read_tokens: u64,
    latency_ms_sum: u128,
    by_provider: BTreeMap<String, Money>,
    by_model: BTreeMap<String, Money>,
    by_agent_type: BTreeMap<String, Money>,
    by_client: BTreeMap<String, Money>,
    by_team: BTreeMap<String, Money>,
    /// Exact cost per (provider, model label), for `llm_gateway_cost_usd_total`.
    cost_by_series: BTreeMap<(String, String), Money>,
    recent: VecDeque<Value>,
}

fn add_bounded(map: &mut BTreeMap<String, Money>, key: &str, amount: Money) {
    if let Some(total) = map.get_mut(key) {
        *total += amount;
    } else if map.len() < MAX_KEYS {
        map.insert(key.to_owned(), amount);
    } else {
        *map.entry("other".to_owned()).or_default() += amount;
    }
}

pub(crate) fn usd(money: Money) -> Value {
    serde_json::Number::from_f64(money.to_usd_f64()).map_or(Value::Null, Value::Number)
}

/// A (provider, model label) cost series a request changed, and its new exact total.
pub(crate) type CostTotal = (String, String, Money);

impl Summary {
    /// Add `request` to the totals; returns the cost series it changed.
    pub(crate) fn record(&mut self, request: FinishedRequest) -> Vec<CostTotal> {
        let mut touched = Vec::new();
        self.total_requests = self.total_requests.saturating_add(1);
        let latency_ms = request.latency.as_millis();
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(latency_ms);
        let mut input = 0u64;
        let mut output = 0u64;
        let mut request_cost: Option<Money> = None;
        let mut model = None;
        let mut provider = request.provider.clone();
        for report in &request.costs {
            let usage = &report.usage.usage;
            let tokens = BillableTokens::from_usage(usage);
            // Saturating: a broken upstream's counts must not wrap the totals.
            input = input.saturating_add(tokens.input);
            output = output.saturating_add(tokens.output);
            self.input_tokens = self.input_tokens.saturating_add(tokens.input);
            self.output_tokens = self.output_tokens.saturating_add(tokens.output);
            self.cache_write_tokens = self
                .cache_write_tokens
                .saturating_add(tokens.cache_write_total());
            self.cache_read_tokens = self.cache_read_tokens.saturating_add(tokens.cache_read);
            let provider_name = report.usage.provider.to_string();
            let model_name = report
                .usage
                .model
                .clone()
                .unwrap_or_else(|| "unknown".into());
            match report.cost {
                Some(cost) => {
                    self.total_cost += cost;
                    *request_cost.get_or_insert(Money::ZERO) += cost;
                    add_bounded(&mut self.by_provider, &provider_name, cost);
                    add_bounded(&mut self.by_model, &model_name, cost);
                    let agent = report.usage.agent_type.as_deref().unwrap_or("none");
                    add_bounded(&mut self.by_agent_type, agent, cost);
                    if let Some(client) = &request.client {
                        add_bounded(&mut self.by_client, client, cost);
                    }
                    if let Some(team) = &request.team {
                        add_bounded(&mut self.by_team, team, cost);
                    }
                    let label = report.priced_as.clone().unwrap_or_else(|| "other".into());
                    let total = self
                        .cost_by_series
                        .entry((provider_name.clone(), label.clone()))
                        .or_default();
                    *total += cost;
                    touched.push((provider_name.clone(), label, *total));
                }
                None => self.unpriced_requests = self.unpriced_requests.saturating_add(1),
            }
            model = Some(model_name);
            provider = Some(provider_name);
        }
        let entry = json!({
            "request_id": request.request_id,
            "timestamp": humantime::format_rfc3339_millis(request.timestamp).to_string(),
            "provider": provider,
            "model": model,
            "status": request.status,
            "stream": request.stream,
            "input_tokens": input,
            "output_tokens": output,
            "cost_usd": request_cost.map_or(Value::Null, usd),
            "latency_ms": latency_ms as u64,
        });
        if self.recent.len() == RECENT {
            self.recent.pop_back();
        }
        self.recent.push_front(entry);
        touched
    }

    pub(crate) fn to_json(&self) -> Value {
        let money_map = |map: &BTreeMap<String, Money>| -> Value {
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), usd(*v)))
                    .collect::<Map<_, _>>(),
            )
        };
        let avg_latency_ms = if self.total_requests == 0 {
            0.0
        } else {
            self.latency_ms_sum as f64 / self.total_requests as f64
        };
        json!({
            "summary": {
                "total_requests": self.total_requests,
                "total_cost_usd": usd(self.total_cost),
                "total_cost_usd_exact": self.total_cost.to_string(),
                "total_input_tokens": self.input_tokens,
                "total_output_tokens": self.output_tokens,
                "total_cache_write_tokens": self.cache_write_tokens,
                "total_cache_read_tokens": self.cache_read_tokens,
                "avg_latency_ms": avg_latency_ms,
                "unpriced_requests": self.unpriced_requests,
            },
            "by_provider": money_map(&self.by_provider),
            "by_model": money_map(&self.by_model),
            "by_agent_type": money_map(&self.by_agent_type),
            "by_client": money_map(&self.by_client),
            "by_team": money_map(&self.by_team),
            "recent": self.recent.iter().cloned().collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::CostReport;
    use crate::usage::{Outcome, Usage, UsageReport};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn huge_request() -> FinishedRequest {
        let usage = UsageReport {
            request_id: "gw_1".into(),
            provider: Arc::from("anthropic"),
            model: None,
            agent_type: None,
            client: None,
            stream: false,
            usage: Usage {
                input_tokens: Some(u64::MAX),
                output_tokens: Some(u64::MAX - 1),
                ..Usage::default()
            },
            outcome: Outcome::Complete,
            ttft: None,
            duration: Duration::ZERO,
            parse_failures: 0,
        };
        let report = CostReport {
            usage,
            cost: None,
            breakdown: None,
            priced_as: None,
            price_table_version: Arc::from("v"),
        };
        FinishedRequest {
            request_id: "gw_1".into(),
            timestamp: SystemTime::UNIX_EPOCH,
            status: 200,
            provider: None,
            client: None,
            team: None,
            costs: vec![report.clone(), report],
            latency: Duration::ZERO,
            overhead: None,
            stream: false,
        }
    }

    #[test]
    fn token_totals_saturate_instead_of_wrapping() {
        let mut summary = Summary::default();
        summary.record(huge_request());
        summary.record(huge_request());
        let json = summary.to_json();
        assert_eq!(json["summary"]["total_input_tokens"], u64::MAX);
        assert_eq!(json["summary"]["total_output_tokens"], u64::MAX);
        assert_eq!(json["recent"][0]["input_tokens"], u64::MAX);
    }

    fn priced(client: Option<&str>, team: Option<&str>, picos: u128) -> FinishedRequest {
        let mut request = huge_request();
        request.costs.truncate(1);
        request.costs[0].usage.usage = Usage::default();
        request.costs[0].cost = Some(Money::from_picos(picos));
        request.client = client.map(str::to_owned);
        request.team = team.map(str::to_owned);
        request
    }

    #[test]
    fn by_client_and_by_team_are_exact_sums() {
        let mut summary = Summary::default();
        // 0.1 and 0.2 USD: as floats they would sum to 0.30000000000000004.
        summary.record(priced(Some("ci"), Some("platform"), 100_000_000_000));
        summary.record(priced(Some("ci"), Some("platform"), 200_000_000_000));
        summary.record(priced(Some("dev"), Some("platform"), 1));
        summary.record(priced(Some("solo"), None, 7));
        summary.record(priced(None, None, 5));
        let json = summary.to_json();
        let usd_of = |picos: u128| usd(Money::from_picos(picos));
        assert_eq!(json["by_client"]["ci"], usd_of(300_000_000_000));
        assert_eq!(json["by_client"]["ci"], serde_json::json!(0.3));
        assert_eq!(json["by_client"]["dev"], usd_of(1));
        assert_eq!(json["by_client"]["solo"], usd_of(7));
        assert_eq!(json["by_client"].as_object().unwrap().len(), 3);
        assert_eq!(json["by_team"]["platform"], usd_of(300_000_000_001));
        assert_eq!(json["by_team"].as_object().unwrap().len(), 1);
        assert_eq!(
            json["summary"]["total_cost_usd_exact"],
            Money::from_picos(300_000_000_013).to_string()
        );
    }
}
