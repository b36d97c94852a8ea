//! Which instrumentation covers which library: ferrotel's own, or an upstream contrib
//! package. Library names and supported ranges are those the contrib packages declare
//! (their `instruments` extra), for the 0.66 line.

/// Who instruments a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// A ferrotel built-in instrumentation, by name.
    BuiltIn(&'static str),
    /// An upstream contrib distribution to install.
    Contrib(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// A requirement on the instrumented library; `None` for the standard library.
    pub library: Option<&'static str>,
    pub coverage: Coverage,
}

const fn contrib(library: &'static str, package: &'static str) -> Entry {
    Entry {
        library: Some(library),
        coverage: Coverage::Contrib(package),
    }
}

const fn builtin_stdlib(name: &'static str) -> Entry {
    Entry {
        library: None,
        coverage: Coverage::BuiltIn(name),
    }
}

const fn stdlib(package: &'static str) -> Entry {
    Entry {
        library: None,
        coverage: Coverage::Contrib(package),
    }
}

/// Upstream's default set (`opentelemetry-bootstrap` installs these whatever the libraries):
/// each has a catalog row, so the report says who covers it.
pub const UPSTREAM_DEFAULTS: &[&str] = &[
    "asyncio",
    "dbapi",
    "exceptions",
    "logging",
    "sqlite3",
    "threading",
    "urllib",
    "wsgi",
];

pub const CATALOG: &[Entry] = &[
    stdlib("opentelemetry-instrumentation-asyncio"),
    // ferrotel's DB-API, WSGI and ASGI layers are built in: upstream's packages of those
    // names only serve other contrib packages and activate nothing themselves.
    builtin_stdlib("dbapi"),
    builtin_stdlib("exceptions"),
    builtin_stdlib("logging"),
    builtin_stdlib("sqlite3"),
    builtin_stdlib("threading"),
    builtin_stdlib("urllib"),
    builtin_stdlib("wsgi"),
    contrib("aio_pika >= 7.2.0, < 11.0.0", "opentelemetry-instrumentation-aio-pika"),
    Entry {
        library: Some("aiohttp ~= 3.0"),
        coverage: Coverage::BuiltIn("aiohttp-client"),
    },
    Entry {
        library: Some("aiohttp ~= 3.0"),
        coverage: Coverage::BuiltIn("aiohttp-server"),
    },
    contrib("aiokafka >= 0.8, < 1.0", "opentelemetry-instrumentation-aiokafka"),
    contrib("aiopg >= 0.13.0, < 2.0.0", "opentelemetry-instrumentation-aiopg"),
    contrib("asyncclick ~= 8.0", "opentelemetry-instrumentation-asyncclick"),
    Entry {
        library: Some("asyncpg >= 0.12.0"),
        coverage: Coverage::BuiltIn("asyncpg"),
    },
    contrib("boto3 ~= 1.0", "opentelemetry-instrumentation-boto3sqs"),
    Entry {
        library: Some("botocore ~= 1.0"),
        coverage: Coverage::BuiltIn("botocore"),
    },
    contrib("aiobotocore >= 2.0, < 4.0", "opentelemetry-instrumentation-botocore"),
    contrib("cassandra-driver ~= 3.25", "opentelemetry-instrumentation-cassandra"),
    contrib("scylla-driver ~= 3.25", "opentelemetry-instrumentation-cassandra"),
    Entry {
        library: Some("celery >= 4.0, < 6.0"),
        coverage: Coverage::BuiltIn("celery"),
    },
    contrib("click >= 8.1.3, < 9.0.0", "opentelemetry-instrumentation-click"),
    contrib(
        "confluent-kafka >= 1.8.2, < 3.0.0",
        "opentelemetry-instrumentation-confluent-kafka",
    ),
    Entry {
        library: Some("django >= 2.0"),
        coverage: Coverage::BuiltIn("django"),
    },
    contrib("falcon >= 1.4.1, < 5.0.0", "opentelemetry-instrumentation-falcon"),
    Entry {
        library: Some("fastapi >= 0.92"),
        coverage: Coverage::BuiltIn("fastapi"),
    },
    Entry {
        library: Some("flask >= 1.0"),
        coverage: Coverage::BuiltIn("flask"),
    },
    Entry {
        library: Some("grpcio >= 1.42.0"),
        // One library, four entry points (client and server, sync and grpc.aio).
        coverage: Coverage::BuiltIn("grpc_client, grpc_server, grpc_aio_client, grpc_aio_server"),
    },
    Entry {
        library: Some("httpx >= 0.20.0"),
        coverage: Coverage::BuiltIn("httpx"),
    },
    Entry {
        library: Some("httpx2 >= 2.0.0"),
        coverage: Coverage::BuiltIn("httpx2"),
    },
    contrib("jinja2 >= 2.7, < 4.0", "opentelemetry-instrumentation-jinja2"),
    contrib(
        "kafka-python >= 2.0, < 4.0",
        "opentelemetry-instrumentation-kafka-python",
    ),
    contrib("mysql-connector-python >= 8.0", "opentelemetry-instrumentation-mysql"),
    contrib("mysqlclient < 3", "opentelemetry-instrumentation-mysqlclient"),
    contrib("openai >= 1.26.0", "opentelemetry-instrumentation-openai-v2"),
    contrib("pika >= 0.12.0", "opentelemetry-instrumentation-pika"),
    Entry {
        library: Some("psycopg >= 3.1.0"),
        coverage: Coverage::BuiltIn("psycopg"),
    },
    Entry {
        library: Some("psycopg2 >= 2.7.3.1"),
        coverage: Coverage::BuiltIn("psycopg2"),
    },
    Entry {
        library: Some("psycopg2-binary >= 2.7.3.1"),
        coverage: Coverage::BuiltIn("psycopg2"),
    },
    contrib("pymemcache >= 1.3.5, < 5", "opentelemetry-instrumentation-pymemcache"),
    contrib("pymongo >= 3.1, < 5.0", "opentelemetry-instrumentation-pymongo"),
    contrib("pymssql >= 2.1.5, < 3", "opentelemetry-instrumentation-pymssql"),
    contrib("PyMySQL < 2", "opentelemetry-instrumentation-pymysql"),
    contrib("pyramid >= 1.7", "opentelemetry-instrumentation-pyramid"),
    Entry {
        library: Some("redis >= 4.0"),
        coverage: Coverage::BuiltIn("redis"),
    },
    contrib("remoulade >= 0.50", "opentelemetry-instrumentation-remoulade"),
    Entry {
        library: Some("requests ~= 2.0"),
        coverage: Coverage::BuiltIn("requests"),
    },
    Entry {
        library: Some("sqlalchemy >= 1.4.0, < 2.2.0"),
        coverage: Coverage::BuiltIn("sqlalchemy"),
    },
    Entry {
        library: Some("starlette >= 0.13"),
        coverage: Coverage::BuiltIn("starlette"),
    },
    contrib("structlog >= 21.1", "opentelemetry-instrumentation-structlog"),
    contrib("psutil >= 5", "opentelemetry-instrumentation-system-metrics"),
    contrib("tornado >= 5.1.1", "opentelemetry-instrumentation-tornado"),
    contrib("tortoise-orm >= 0.17.0", "opentelemetry-instrumentation-tortoiseorm"),
    Entry {
        library: Some("urllib3 >= 1.0.0, < 3.0.0"),
        coverage: Coverage::BuiltIn("urllib3"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotel_distributions::Requirement;

    #[test]
    fn upstreams_default_set_is_covered() {
        for name in UPSTREAM_DEFAULTS {
            let package = format!("opentelemetry-instrumentation-{name}");
            assert!(
                CATALOG.iter().any(
                    |e| e.library.is_none() && matches!(e.coverage, Coverage::BuiltIn(n) if n == *name)
                        || matches!(e.coverage, Coverage::Contrib(p) if p == package)
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn every_library_spec_parses() {
        for entry in CATALOG {
            if let Some(spec) = entry.library {
                Requirement::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            }
        }
    }
}
