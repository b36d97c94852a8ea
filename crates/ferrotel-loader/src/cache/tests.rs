use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferrotel_config::{Config, PythonConfig};
use ferrotel_distributions::{EntryPoint, Environment, MarkerEnv};

use super::*;

fn config(vars: &[(&str, &str)]) -> PythonConfig {
    Config::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
        .config
        .python
}

fn markers() -> MarkerEnv {
    MarkerEnv {
        python_version: "3.11".into(),
        ..MarkerEnv::default()
    }
}

fn ep(group: &str, name: &str, attr: Option<&str>) -> EntryPoint {
    EntryPoint {
        group: group.into(),
        name: name.into(),
        module: format!("{name}_module.sub"),
        attr: attr.map(str::to_string),
        distribution: format!("{name}-dist"),
    }
}

/// A plan with a record of every kind.
fn full_plan() -> Plan {
    Plan {
        distro: Some(ep(crate::DISTRO_GROUP, "distro", Some("Distro"))),
        configurator: Some(ep(crate::CONFIGURATOR_GROUP, "conf", Some("a.B"))),
        pre_instrument: vec![ep(crate::PRE_INSTRUMENT_GROUP, "pre", None)],
        post_instrument: vec![ep(crate::POST_INSTRUMENT_GROUP, "post", Some("hook"))],
        instrumentors: vec![
            PlannedInstrumentor {
                entry_point: ep(crate::INSTRUMENTOR_GROUP, "flask", Some("I")),
                trigger: Trigger::OnImport(vec!["flask".into(), "werkzeug".into()]),
            },
            PlannedInstrumentor {
                entry_point: ep(crate::INSTRUMENTOR_GROUP, "stdlib", Some("I")),
                trigger: Trigger::AtStart,
            },
        ],
        skipped: vec![
            (ep(crate::INSTRUMENTOR_GROUP, "a", None), SkipReason::Disabled),
            (ep(crate::INSTRUMENTOR_GROUP, "b", None), SkipReason::NotInEnableList),
            (
                ep(crate::INSTRUMENTOR_GROUP, "c", None),
                SkipReason::Duplicate {
                    chosen: "ferrotel".into(),
                },
            ),
            (
                ep(crate::INSTRUMENTOR_GROUP, "d", None),
                SkipReason::Missing {
                    requirement: "d >= 1; extra == \"instruments\"".into(),
                },
            ),
            (
                ep(crate::INSTRUMENTOR_GROUP, "e", None),
                SkipReason::WrongVersion {
                    requirement: "e>=2".into(),
                    found: "e 1.0".into(),
                },
            ),
        ],
        warnings: vec!["OTEL_PYTHON_DISTRO=\"x\" names nothing".into()],
    }
}

/// A site directory last changed long enough ago for a plan to be stored.
fn settled_site() -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    backdate(site.path(), 60);
    site
}

fn backdate(path: &Path, seconds: u64) {
    let when = SystemTime::now() - Duration::from_secs(seconds);
    fs::File::open(path).unwrap().set_modified(when).unwrap();
}

fn cache_for(dir: &Path, site: &Path, vars: &[(&str, &str)]) -> PlanCache {
    let paths = [site.to_path_buf(), site.join("missing")];
    PlanCache::new(dir, "1.0", &config(vars), &markers(), &paths)
}

#[test]
fn a_stored_plan_is_read_back_whole() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), settled_site());
    let cache = cache_for(cache_dir.path(), site.path(), &[]);
    assert_eq!(cache.load(), None);
    cache.store(&full_plan(), &Environment::default());
    assert_eq!(cache_for(cache_dir.path(), site.path(), &[]).load(), Some(full_plan()));
}

#[test]
fn adding_or_removing_a_metadata_directory_invalidates_the_plan() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), settled_site());
    cache_for(cache_dir.path(), site.path(), &[]).store(&full_plan(), &Environment::default());
    fs::create_dir(site.path().join("x-1.0.dist-info")).unwrap();
    assert_eq!(cache_for(cache_dir.path(), site.path(), &[]).load(), None);
    backdate(site.path(), 30);
    cache_for(cache_dir.path(), site.path(), &[]).store(&Plan::default(), &Environment::default());
    fs::remove_dir(site.path().join("x-1.0.dist-info")).unwrap();
    assert_eq!(cache_for(cache_dir.path(), site.path(), &[]).load(), None);
}

#[test]
fn each_set_of_variables_keeps_its_own_plan() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), settled_site());
    let disabled = [("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "flask")];
    cache_for(cache_dir.path(), site.path(), &[]).store(&full_plan(), &Environment::default());
    assert_eq!(cache_for(cache_dir.path(), site.path(), &disabled).load(), None);
    cache_for(cache_dir.path(), site.path(), &disabled).store(&Plan::default(), &Environment::default());
    assert_eq!(cache_for(cache_dir.path(), site.path(), &[]).load(), Some(full_plan()));
    assert_eq!(
        cache_for(cache_dir.path(), site.path(), &disabled).load(),
        Some(Plan::default())
    );
    // Variables the plan does not depend on share it.
    let unrelated = [("OTEL_SERVICE_NAME", "shop")];
    assert_eq!(
        cache_for(cache_dir.path(), site.path(), &unrelated).load(),
        Some(full_plan())
    );
}

#[test]
fn a_corrupt_or_foreign_file_is_ignored_and_replaced() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), settled_site());
    let cache = cache_for(cache_dir.path(), site.path(), &[]);
    cache.store(&full_plan(), &Environment::default());
    let stored = fs::read_to_string(cache.path()).unwrap();
    let (key, body) = stored.split_at(stored.find("\nplan\n").unwrap() + "\nplan\n".len());
    let corruptions = [
        format!("{key}{}", &body[..body.len() / 2]),
        format!("{key}{}", body.replace("on-import", "on-imp0rt")),
        format!("{key}{body}trailing\n"),
        format!("{key}\u{0}\u{1}garbage"),
        key.replace("1.0", "0.9") + body,
        String::new(),
    ];
    for corrupt in corruptions {
        fs::write(cache.path(), &corrupt).unwrap();
        assert_eq!(cache.load(), None, "{corrupt:?}");
    }
    fs::write(cache.path(), [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(cache.load(), None);
    cache.store(&full_plan(), &Environment::default());
    assert_eq!(cache.load(), Some(full_plan()));
}

#[test]
fn nothing_is_stored_while_a_directory_has_just_changed() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cache = cache_for(cache_dir.path(), site.path(), &[]);
    cache.store(&full_plan(), &Environment::default());
    assert!(!cache.path().exists());
}

#[test]
fn an_unwritable_location_only_costs_the_scan() {
    let site = settled_site();
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let cache = cache_for(&blocker.path().join("ferrotel"), site.path(), &[]);
    cache.store(&full_plan(), &Environment::default());
    assert_eq!(cache.load(), None);
}

#[test]
fn a_plan_that_cannot_be_written_as_lines_is_not_stored() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), settled_site());
    let cache = cache_for(cache_dir.path(), site.path(), &[]);
    let mut plan = full_plan();
    plan.warnings.push("two\nlines".into());
    cache.store(&plan, &Environment::default());
    assert!(!cache.path().exists());
}

#[test]
fn old_plans_are_pruned() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), settled_site());
    for i in 0..MAX_FILES + 5 {
        let name = format!("name{i}");
        cache_for(cache_dir.path(), site.path(), &[("OTEL_PYTHON_DISTRO", &name)])
            .store(&Plan::default(), &Environment::default());
    }
    assert_eq!(fs::read_dir(cache_dir.path()).unwrap().count(), MAX_FILES);
    let newest = cache_for(
        cache_dir.path(),
        site.path(),
        &[("OTEL_PYTHON_DISTRO", &format!("name{}", MAX_FILES + 4))],
    );
    assert_eq!(newest.load(), Some(Plan::default()));
}

#[test]
fn an_egg_info_rewritten_in_place_invalidates_the_plan() {
    let (cache_dir, site) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let egg_info = site.path().join("mylib.egg-info");
    fs::create_dir(&egg_info).unwrap();
    fs::write(egg_info.join("PKG-INFO"), "Name: mylib\nVersion: 0.1.dev0\n").unwrap();
    fs::write(egg_info.join("entry_points.txt"), "").unwrap();
    for path in [
        egg_info.join("PKG-INFO"),
        egg_info.join("entry_points.txt"),
        egg_info,
        site.path().into(),
    ] {
        backdate(&path, 60);
    }
    let env = Environment::scan(&[site.path()]);
    assert_eq!(env.distributions().len(), 1);
    cache_for(cache_dir.path(), site.path(), &[]).store(&full_plan(), &env);
    assert_eq!(cache_for(cache_dir.path(), site.path(), &[]).load(), Some(full_plan()));
    // As `setup.py develop` rewrites it: the file changes, its directory and site-packages do not.
    let entry_points = site.path().join("mylib.egg-info/entry_points.txt");
    fs::write(&entry_points, "[opentelemetry_instrumentor]\nmylib = mylib:I\n").unwrap();
    backdate(&site.path().join("mylib.egg-info"), 60);
    assert_eq!(cache_for(cache_dir.path(), site.path(), &[]).load(), None);
    // A file just written is not trusted to show its next change either.
    cache_for(cache_dir.path(), site.path(), &[]).store(&Plan::default(), &env);
    assert_eq!(cache_for(cache_dir.path(), site.path(), &[]).load(), None);
}
