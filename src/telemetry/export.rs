//! The OTLP/HTTP exporter a host installs: batch, bounded, never in a request's way.

use crate::config::TelemetryConfig;
use crate::error::{Error, ErrorKind};
use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing::instrument::WithSubscriber;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// Counter: spans lost because their batch could not be exported (collector down,
/// refused, too slow).
pub const SPANS_DROPPED: &str = "llm_gateway_telemetry_spans_dropped_total";

/// Spans waiting for export at most; past it new spans are dropped, never waited for.
const MAX_QUEUE: usize = 4096;
/// Longest an export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`otlp_layer`] builds: the `tracing` layer for the host's subscriber and the
/// provider behind it (keep it; `shutdown()` at exit flushes what is queued).
pub struct OtlpLayer<S> {
    /// Add it to the subscriber: `tracing_subscriber::registry().with(otlp.layer)`.
    pub layer: OpenTelemetryLayer<S, SdkTracer>,
    /// The tracer provider: `force_flush()` and `shutdown()` block, so call them off the
    /// async threads (`spawn_blocking`) or after the runtime.
    pub provider: SdkTracerProvider,
}

/// The OTLP/HTTP (protobuf) trace exporter for `config`, as a `tracing` layer; `None`
/// when `otlp_endpoint` is not set.
///
/// Must be called inside a tokio runtime: exports are sent from it (one short task per
/// batch), while the batching runs on the SDK's own thread.
pub fn otlp_layer<S>(config: &TelemetryConfig) -> Result<Option<OtlpLayer<S>>, Error>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            "telemetry: the OTLP exporter must be built inside a tokio runtime",
        )
    })?;
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("telemetry: {e}")))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint).as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(RuntimeClient { client, runtime })
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("telemetry: {e}")))?;
    let processor = BatchSpanProcessor::builder(Counted(exporter))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUE)
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    // Only what the spans say: no source locations, threads or busy/idle timings.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("llm-gateway"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    Ok(Some(OtlpLayer { layer, provider }))
}

/// `{endpoint}/v1/traces`, by path segments (a base path such as `/otel` is kept).
fn traces_url(endpoint: &url::Url) -> url::Url {
    let mut url = endpoint.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["v1", "traces"]);
    }
    url
}

/// Sends the exporter's requests from the host's tokio runtime: the SDK's batch thread
/// has no runtime of its own, and waits only on itself.
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        // The export's own HTTP client must not make spans to export (a loop at TRACE).
        let quiet = tracing::subscriber::NoSubscriber::default();
        let sent = self.runtime.spawn(WithSubscriber::with_subscriber(
            async move {
                let response = client.execute(request).await?;
                let mut answer = http::Response::builder().status(response.status());
                if let Some(headers) = answer.headers_mut() {
                    *headers = response.headers().clone();
                }
                let body = response.bytes().await?;
                Ok::<_, HttpError>(answer.body(body)?)
            },
            quiet,
        ));
        sent.await?
    }
}

/// The OTLP exporter, counting the spans of every batch it failed to deliver.
#[derive(Debug)]
struct Counted<E>(E);

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.0.export(batch).await;
        if result.is_err() {
            metrics::counter!(SPANS_DROPPED).increment(spans);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_added_to_the_endpoint() {
        let url = |s: &str| traces_url(&s.parse().unwrap()).to_string();
        assert_eq!(
            url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(url("http://h:4318/otel/"), "http://h:4318/otel/v1/traces");
        assert_eq!(url("http://h:4318/otel"), "http://h:4318/otel/v1/traces");
    }
}
