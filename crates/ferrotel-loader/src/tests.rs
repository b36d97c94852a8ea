use std::fs;
use std::path::Path;

use ferrotel_config::Config;

use super::*;

struct Site(tempfile::TempDir);

impl Site {
    fn new() -> Site {
        Site(tempfile::tempdir().unwrap())
    }

    /// A distribution with entry points (`group`, `name`, `target`) and requirement lines.
    fn dist(
        &self,
        name: &str,
        version: &str,
        entry_points: &[(&str, &str, &str)],
        requires: &[&str],
        modules: &[&str],
    ) -> &Self {
        let dir = self
            .0
            .path()
            .join(format!("{}-{version}.dist-info", name.replace('-', "_")));
        fs::create_dir_all(&dir).unwrap();
        let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
        for r in requires {
            metadata.push_str(&format!("Requires-Dist: {r}\n"));
        }
        fs::write(dir.join("METADATA"), metadata).unwrap();
        let mut text = String::new();
        for (group, ep_name, target) in entry_points {
            text.push_str(&format!("[{group}]\n{ep_name} = {target}\n"));
        }
        fs::write(dir.join("entry_points.txt"), text).unwrap();
        let record: String = modules.iter().map(|m| format!("{m}/__init__.py,,\n")).collect();
        fs::write(dir.join("RECORD"), record).unwrap();
        self
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

fn plan_with(site: &Site, env_vars: &[(&str, &str)]) -> Plan {
    let vars: Vec<(String, String)> = env_vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let config = Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).config;
    let markers = MarkerEnv {
        python_version: "3.11".into(),
        python_full_version: "3.11.7".into(),
        ..MarkerEnv::default()
    };
    plan(&config.python, &Environment::scan(&[site.path()]), &markers)
}

fn flask_site() -> Site {
    let site = Site::new();
    site.dist("flask", "3.1.2", &[], &[], &["flask"])
        .dist(
            "opentelemetry-instrumentation-flask",
            "0.66b1",
            &[(
                INSTRUMENTOR_GROUP,
                "flask",
                "opentelemetry.instrumentation.flask:FlaskInstrumentor",
            )],
            &["opentelemetry-api~=1.12", "flask>=1.0; extra == \"instruments\""],
            &["opentelemetry"],
        )
        .dist(
            "opentelemetry-instrumentation-django",
            "0.66b1",
            &[(
                INSTRUMENTOR_GROUP,
                "django",
                "opentelemetry.instrumentation.django:DjangoInstrumentor",
            )],
            &["django>=2.0; extra == \"instruments\""],
            &["opentelemetry"],
        )
        .dist(
            "opentelemetry-instrumentation-logging",
            "0.66b1",
            &[(
                INSTRUMENTOR_GROUP,
                "logging",
                "opentelemetry.instrumentation.logging:LoggingInstrumentor",
            )],
            &[],
            &["opentelemetry"],
        )
        .dist(
            "opentelemetry-instrumentation-wsgi",
            "0.66b1",
            &[(
                INSTRUMENTOR_GROUP,
                "wsgi",
                "opentelemetry.instrumentation.wsgi:WsgiInstrumentor",
            )],
            &[],
            &["opentelemetry"],
        );
    site
}

fn names(plan: &Plan) -> Vec<&str> {
    plan.instrumentors.iter().map(|p| p.entry_point.name.as_str()).collect()
}

#[test]
fn instrumentors_wait_for_their_library() {
    let plan = plan_with(&flask_site(), &[]);
    assert_eq!(names(&plan), vec!["flask", "logging", "wsgi"]);
    assert_eq!(plan.instrumentors[0].trigger, Trigger::OnImport(vec!["flask".into()]));
    assert_eq!(plan.instrumentors[1].trigger, Trigger::OnImport(vec!["logging".into()]));
    assert_eq!(plan.instrumentors[2].trigger, Trigger::AtStart);
    let (ep, reason) = &plan.skipped[0];
    assert_eq!(ep.name, "django");
    assert_eq!(
        reason.to_string(),
        "needs django>=2.0; extra == \"instruments\", which is not installed"
    );
}

#[test]
fn version_conflicts_skip() {
    let site = flask_site();
    site.dist("django", "1.11", &[], &[], &["django"]);
    let plan = plan_with(&site, &[]);
    let (_, reason) = plan.skipped.iter().find(|(ep, _)| ep.name == "django").unwrap();
    assert!(
        matches!(reason, SkipReason::WrongVersion { found, .. } if found == "django 1.11"),
        "{reason}"
    );
}

#[test]
fn disable_and_enable_lists() {
    let site = flask_site();
    let plan = plan_with(&site, &[("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "flask, logging")]);
    assert_eq!(names(&plan), vec!["wsgi"]);
    assert_eq!(
        plan.skipped.iter().filter(|(_, r)| *r == SkipReason::Disabled).count(),
        2
    );

    let plan = plan_with(&site, &[("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")]);
    assert!(plan.instrumentors.is_empty());

    let plan = plan_with(&site, &[("OTEL_PYTHON_ENABLED_INSTRUMENTATIONS", "flask,wsgi")]);
    assert_eq!(names(&plan), vec!["flask", "wsgi"]);

    // The disable list wins over the enable list.
    let plan = plan_with(
        &site,
        &[
            ("OTEL_PYTHON_ENABLED_INSTRUMENTATIONS", "flask,wsgi"),
            ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "wsgi"),
        ],
    );
    assert_eq!(names(&plan), vec!["flask"]);
}

#[test]
fn instruments_any_needs_one() {
    let site = Site::new();
    site.dist("psycopg2-binary", "2.9.10", &[], &[], &["psycopg2"]).dist(
        "inst-pg",
        "1.0",
        &[(INSTRUMENTOR_GROUP, "pg", "inst_pg:Inst")],
        &[
            "psycopg2>=2.7; extra == \"instruments-any\"",
            "psycopg2-binary>=2.7; extra == \"instruments-any\"",
        ],
        &["inst_pg"],
    );
    let plan = plan_with(&site, &[]);
    assert_eq!(
        plan.instrumentors[0].trigger,
        Trigger::OnImport(vec!["psycopg2".into()])
    );
}

#[test]
fn duplicate_names_keep_the_first() {
    let site = flask_site();
    site.dist(
        "zz-other-flask",
        "1.0",
        &[(INSTRUMENTOR_GROUP, "flask", "other:Inst")],
        &["flask; extra == \"instruments\""],
        &["other"],
    );
    let plan = plan_with(&site, &[]);
    assert_eq!(names(&plan).iter().filter(|n| **n == "flask").count(), 1);
    assert!(plan.skipped.iter().any(
        |(ep, r)| ferrotel_distributions::normalize(&ep.distribution) == "zz-other-flask"
            && matches!(r, SkipReason::Duplicate { .. })
    ));
}

#[test]
fn distro_and_configurator_selection() {
    let site = Site::new();
    site.dist(
        "opentelemetry-distro",
        "0.66b1",
        &[(DISTRO_GROUP, "distro", "opentelemetry.distro:OpenTelemetryDistro")],
        &[],
        &["opentelemetry"],
    )
    .dist(
        "vendor",
        "1.0",
        &[(CONFIGURATOR_GROUP, "vendor_conf", "vendor:Conf")],
        &[],
        &["vendor"],
    )
    .dist(
        "opentelemetry-distro-cfg",
        "0.66b1",
        &[(CONFIGURATOR_GROUP, "configurator", "opentelemetry.distro:Conf")],
        &[],
        &[],
    )
    .dist(
        "hooks",
        "1.0",
        &[
            (PRE_INSTRUMENT_GROUP, "pre", "hooks:pre"),
            (POST_INSTRUMENT_GROUP, "post", "hooks:post"),
        ],
        &[],
        &["hooks"],
    );

    let plan = plan_with(&site, &[]);
    assert_eq!(plan.distro.as_ref().unwrap().name, "distro");
    // Without a choice, the first installed one (scan order) is used, as upstream does.
    assert_eq!(plan.configurator.as_ref().unwrap().name, "configurator");
    assert_eq!(plan.pre_instrument[0].name, "pre");
    assert_eq!(plan.post_instrument[0].name, "post");

    let plan = plan_with(&site, &[("OTEL_PYTHON_CONFIGURATOR", "vendor_conf")]);
    assert_eq!(plan.configurator.as_ref().unwrap().name, "vendor_conf");

    let plan = plan_with(&site, &[("OTEL_PYTHON_DISTRO", "nope")]);
    assert_eq!(plan.distro.as_ref().unwrap().name, "distro");
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("OTEL_PYTHON_DISTRO=\"nope\"") && plan.warnings[0].contains("installed: distro"));

    // ferrotel's own configurator wins when nothing is named; its distro is never loaded
    // (it exists for upstream's launcher), so another installed distro still is.
    site.dist(
        "ferrotel",
        "0.1.0",
        &[
            (CONFIGURATOR_GROUP, "ferrotel", "ferrotel.configurator:Configurator"),
            (DISTRO_GROUP, "ferrotel", "ferrotel.distro:FerrotelDistro"),
        ],
        &[],
        &["ferrotel"],
    );
    let plan = plan_with(&site, &[]);
    assert_eq!(plan.configurator.as_ref().unwrap().name, "ferrotel");
    assert_eq!(plan.distro, None);
    let plan = plan_with(&site, &[("OTEL_PYTHON_DISTRO", "distro")]);
    assert_eq!(plan.distro.as_ref().unwrap().name, "distro");
}

#[test]
fn ferrotels_built_in_wins_over_a_contrib_package_of_the_same_name() {
    let site = flask_site();
    site.dist(
        "ferrotel",
        "0.1.0",
        &[(
            INSTRUMENTOR_GROUP,
            "logging",
            "ferrotel.instrumentation.log_correlation:LoggingInstrumentor",
        )],
        &[],
        &["ferrotel"],
    );
    let plan = plan_with(&site, &[]);
    let logging: Vec<&PlannedInstrumentor> = plan
        .instrumentors
        .iter()
        .filter(|p| p.entry_point.name == "logging")
        .collect();
    assert_eq!(logging.len(), 1);
    assert_eq!(logging[0].entry_point.distribution, "ferrotel");
    assert_eq!(logging[0].trigger, Trigger::OnImport(vec!["logging".into()]));
    let (skipped, reason) = plan.skipped.iter().find(|(ep, _)| ep.name == "logging").unwrap();
    assert_eq!(
        ferrotel_distributions::normalize(&skipped.distribution),
        "opentelemetry-instrumentation-logging"
    );
    assert_eq!(
        reason.to_string(),
        "ferrotel's built-in instrumentation is used instead"
    );
    // The contrib one stands for the built-in if the app calls it itself.
    let replaced: Vec<(&str, &str)> = plan
        .replaced_by_builtins()
        .map(|(contrib, builtin)| (contrib.distribution.as_str(), builtin.distribution.as_str()))
        .collect();
    assert_eq!(replaced, [(skipped.distribution.as_str(), "ferrotel")]);
    // Disabled by name, neither runs: the contrib one is the app's to call as it is.
    let plan = plan_with(&site, &[("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "logging")]);
    assert_eq!(plan.replaced_by_builtins().count(), 0);
}

#[test]
fn built_ins_check_their_own_library() {
    let site = flask_site();
    let flask_ep = (
        INSTRUMENTOR_GROUP,
        "flask",
        "ferrotel.instrumentation.flask:FlaskInstrumentor",
    );
    site.dist("ferrotel", "0.1.0", &[flask_ep], &[], &["ferrotel"]);
    let plan = plan_with(&site, &[]);
    let flask = plan
        .instrumentors
        .iter()
        .find(|p| p.entry_point.name == "flask")
        .unwrap();
    assert_eq!(flask.entry_point.distribution, "ferrotel");
    assert_eq!(flask.trigger, Trigger::OnImport(vec!["flask".into()]));

    let old = Site::new();
    old.dist("flask", "0.12", &[], &[], &["flask"])
        .dist("ferrotel", "0.1.0", &[flask_ep], &[], &["ferrotel"]);
    let plan = plan_with(&old, &[]);
    let (_, reason) = plan.skipped.iter().find(|(ep, _)| ep.name == "flask").unwrap();
    assert_eq!(reason.to_string(), "needs flask >= 1.0, found flask 0.12");
}

#[test]
fn a_builtin_with_alternative_distributions_activates_on_either() {
    let pg_ep = (
        INSTRUMENTOR_GROUP,
        "psycopg2",
        "ferrotel.instrumentation.psycopg2:Psycopg2Instrumentor",
    );
    for distribution in ["psycopg2", "psycopg2-binary"] {
        let site = Site::new();
        site.dist(distribution, "2.9.10", &[], &[], &["psycopg2"]).dist(
            "ferrotel",
            "0.1.0",
            &[pg_ep],
            &[],
            &["ferrotel"],
        );
        let plan = plan_with(&site, &[]);
        assert_eq!(
            plan.instrumentors[0].trigger,
            Trigger::OnImport(vec!["psycopg2".into()])
        );
    }
    let neither = Site::new();
    neither.dist("ferrotel", "0.1.0", &[pg_ep], &[], &["ferrotel"]);
    let plan = plan_with(&neither, &[]);
    let (_, reason) = plan.skipped.iter().find(|(ep, _)| ep.name == "psycopg2").unwrap();
    assert_eq!(reason.to_string(), "needs psycopg2 >= 2.7.3.1, which is not installed");
}

#[test]
fn built_ins_are_off_with_a_warning_without_ferrotels_own_dependency() {
    let eps = [
        (
            INSTRUMENTOR_GROUP,
            "flask",
            "ferrotel.instrumentation.flask:FlaskInstrumentor",
        ),
        (
            INSTRUMENTOR_GROUP,
            "sqlite3",
            "ferrotel.instrumentation.sqlite3:SQLite3Instrumentor",
        ),
        (
            INSTRUMENTOR_GROUP,
            "logging",
            "ferrotel.instrumentation.log_correlation:LoggingInstrumentor",
        ),
        (
            INSTRUMENTOR_GROUP,
            "django",
            "ferrotel.instrumentation.django:DjangoInstrumentor",
        ),
    ];
    let requires = ["opentelemetry-api>=1.26", "pytest; extra == \"test\""];
    // Installed with --no-deps: no opentelemetry-api.
    let site = Site::new();
    site.dist("flask", "3.1.2", &[], &[], &["flask"])
        .dist("ferrotel", "0.1.0", &eps, &requires, &["ferrotel"]);
    let plan = plan_with(&site, &[]);
    assert_eq!(names(&plan), ["logging"]);
    let reason = |plan: &Plan, name: &str| {
        let (_, reason) = plan.skipped.iter().find(|(ep, _)| ep.name == name).unwrap();
        reason.to_string()
    };
    assert_eq!(
        reason(&plan, "flask"),
        "needs opentelemetry-api>=1.26, which is not installed"
    );
    assert_eq!(reason(&plan, "django"), "needs django >= 2.0, which is not installed");
    assert_eq!(
        plan.warnings,
        [
            "ferrotel's instrumentation of flask, sqlite3 is off: it needs opentelemetry-api>=1.26, which is \
          not installed (ferrotel depends on it; was it installed with --no-deps?)"
        ]
    );

    site.dist("opentelemetry-api", "1.20.0", &[], &[], &["opentelemetry"]);
    let plan = plan_with(&site, &[]);
    assert_eq!(
        reason(&plan, "sqlite3"),
        "needs opentelemetry-api>=1.26, found opentelemetry_api 1.20.0"
    );

    let fixed = Site::new();
    fixed
        .dist("flask", "3.1.2", &[], &[], &["flask"])
        .dist("opentelemetry-api", "1.45.1", &[], &[], &["opentelemetry"])
        .dist("ferrotel", "0.1.0", &eps, &requires, &["ferrotel"]);
    let plan = plan_with(&fixed, &[]);
    assert_eq!(names(&plan), ["flask", "sqlite3", "logging"]);
    assert!(plan.warnings.is_empty());
}
