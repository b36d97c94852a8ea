//! Property test over hostile input: random bytes and mutations of valid headers go
//! through every parser for a bounded time (`FERROTEL_FUZZ_SECONDS`, default 2). Nothing
//! may panic, and whatever parses must format back to something that parses the same.

use std::time::{Duration, Instant};

use ferrotel_propagation::{b3, baggage, jaeger, traceparent, tracestate, xray, Carrier, Composite, Format};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,t@v=x",
    "userId=alice,serverNode=DF%2028,isProduction=false;ttl=1",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    "deadbeef%3Abeef%3A0%3A1",
    "000000000000000000000000deadbeef:00000000deadbeef:0:01",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    " Parent = 53995c3f42cd8ad8 ; Self=1-abc ;Root=1-5759e988-bd862e3fe1be46a994272793 ;Lineage=a:1",
];
const ALPHABET: &[u8] = b"0123456789abcdefABCDEF-=,;:%@ \t/*_xRPS\xff\x00";

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                bytes.remove(at.min(bytes.len() - 1));
            }
            1 => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            2 if at < bytes.len() => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
            _ => bytes.extend_from_slice(&bytes.clone()[..at.min(bytes.len())]),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random(rng: &mut Rng) -> String {
    let len = rng.below(120);
    let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

struct One(Vec<(String, String)>);

impl Carrier for One {
    fn get(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn keys(&self) -> Vec<String> {
        self.0.iter().map(|(k, _)| k.clone()).collect()
    }
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

fn check(input: &str) {
    if let Some((t, s, f)) = traceparent::parse(input) {
        assert_eq!(
            traceparent::parse(&traceparent::format(t, s, f)),
            Some((t, s, f & 3)),
            "{input:?}"
        );
    }
    if let Some(members) = tracestate::parse(&[input.to_string()]) {
        assert_eq!(
            tracestate::parse(&[tracestate::format(&members)]),
            Some(members),
            "{input:?}"
        );
    }
    let entries = baggage::parse(&[input.to_string()]);
    assert_eq!(baggage::parse(&[baggage::format(&entries)]), entries, "{input:?}");
    if let Some(ctx) = b3::parse_single(input) {
        let mut c = One(vec![]);
        b3::inject_single(&ctx, &mut c);
        assert_eq!(b3::extract(&c), Some(ctx), "{input:?}");
    }
    if let Some(ctx) = jaeger::parse(input) {
        let mut c = One(vec![]);
        jaeger::inject(&ctx, &[], &mut c);
        assert_eq!(jaeger::extract(&c), Some(ctx), "{input:?}");
    }
    if let Some(ctx) = xray::parse(input) {
        let mut c = One(vec![]);
        xray::inject(&ctx, &mut c);
        assert_eq!(xray::extract(&c), Some(ctx), "{input:?}");
    }
    let every = Composite::new(vec![
        Format::TraceContext,
        Format::Baggage,
        Format::B3Multi,
        Format::Jaeger,
        Format::XRay,
    ]);
    let headers = One([
        "traceparent",
        "tracestate",
        "baggage",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "uber-trace-id",
        "uberctx-k",
        "x-amzn-trace-id",
    ]
    .iter()
    .map(|k| (k.to_string(), input.to_string()))
    .collect());
    let _ = every.extract(&headers);
}

#[test]
fn hostile_input_never_panics_and_parses_round_trip() {
    let seconds: f64 = std::env::var("FERROTEL_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let input = if rng.below(3) == 0 {
                random(&mut rng)
            } else {
                let seed = SEEDS[rng.below(SEEDS.len())];
                mutate(&mut rng, seed)
            };
            check(&input);
            runs += 1;
        }
    }
    // Oversized input is refused up front, whatever it holds.
    for seed in SEEDS {
        check(&seed.repeat(20_000));
    }
    assert!(runs > 10_000, "only {runs} inputs in {seconds} s");
    eprintln!("{runs} inputs checked");
}
