//! Issue 3: the NGSI-LD query language (`q`), type expressions, `scopeQ`, projection,
//! representations, paging/count, `POST /entityOperations/query` and bad queries, over
//! HTTP on a small metropolitan dataset (Aix-Marseille) created in each test's tenant.

use std::collections::{BTreeSet, HashSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// The entities of the dataset, as (key, type) pairs: the id is
/// `urn:ngsi-ld:<Type>:<key>` (the first type for multi-typed entities).
const KEYS: &[&str] = &[
    "port",
    "panier",
    "nord",
    "aix",
    "aubagne",
    "noisePort",
    "noiseAix",
    "devBerre",
    "devHuveaune",
    "waterBerre",
    "waterHuveaune",
    "meteoMarignane",
    "meteoAubagne",
];

fn id_of(key: &str) -> String {
    let kind = match key {
        "port" | "panier" | "nord" | "aix" | "aubagne" => "WasteContainer",
        "noisePort" | "noiseAix" => "NoiseLevelObserved",
        "devBerre" | "devHuveaune" => "Device",
        "waterBerre" | "waterHuveaune" => "WaterObserved",
        "meteoMarignane" | "meteoAubagne" => "WeatherObserved",
        other => panic!("unknown dataset key {other}"),
    };
    format!("urn:ngsi-ld:{kind}:{key}")
}

fn key_of(id: &str) -> &'static str {
    KEYS.iter()
        .copied()
        .find(|k| id_of(k) == id)
        .unwrap_or_else(|| panic!("unexpected entity {id} in a query result"))
}

fn prop(value: Value) -> Value {
    json!({ "type": "Property", "value": value })
}

fn observed(value: Value, at: &str) -> Value {
    json!({ "type": "Property", "value": value, "observedAt": at })
}

fn point(lon: f64, lat: f64) -> Value {
    json!({ "type": "GeoProperty", "value": { "type": "Point", "coordinates": [lon, lat] } })
}

fn rel(object: &str) -> Value {
    json!({ "type": "Relationship", "object": object })
}

/// Creates the dataset (13 entities) in the tenant of `api`.
async fn metropolis(api: &Api) {
    let entities = json!([
        {
            "id": id_of("port"), "type": "WasteContainer",
            "fillingLevel": {
                "type": "Property", "value": 0.85, "observedAt": "2024-05-01T08:00:00Z",
                "reliability": prop(json!(0.9))
            },
            "status": prop(json!("ok")),
            "name": prop(json!("Vieux-Port")),
            "isUnderground": prop(json!(false)),
            "wasteType": prop(json!(["household", "paper"])),
            "address": prop(json!({
                "addressLocality": "Marseille", "postalCode": "13001",
                "streetAddress": "Quai du Port"
            })),
            "specs": prop(json!({ "dimensions": { "height": 1.2, "width": 0.8 } })),
            "refDevice": rel(&id_of("devHuveaune")),
            "location": point(5.3698, 43.2951),
            "scope": "/Marseille/Centre"
        },
        {
            "id": id_of("panier"), "type": "WasteContainer",
            "fillingLevel": {
                "type": "Property", "value": 0.40, "observedAt": "2024-05-02T08:00:00Z",
                "reliability": prop(json!(0.3))
            },
            "status": prop(json!("lidOpen")),
            "name": prop(json!("Panier \"Haut\"")),
            "isUnderground": prop(json!(true)),
            "wasteType": prop(json!(["glass"])),
            "address": prop(json!({ "addressLocality": "Marseille", "postalCode": "13002" })),
            "specs": prop(json!({ "dimensions": { "height": 0.9, "width": 0.8 } })),
            "location": point(5.3675, 43.2990),
            "scope": "/Marseille/Centre/Panier"
        },
        {
            "id": id_of("nord"), "type": "WasteContainer",
            "fillingLevel": observed(json!(0.10), "2024-05-03T08:00:00Z"),
            "status": prop(json!("ok")),
            "name": prop(json!("Nord (1), bis; 15e|x")),
            "isUnderground": prop(json!(false)),
            "address": prop(json!({ "addressLocality": "Marseille", "postalCode": "13015" })),
            "location": point(5.3650, 43.3600),
            "scope": "/Marseille/Nord"
        },
        {
            "id": id_of("aix"), "type": ["WasteContainer", "Device"],
            "fillingLevel": observed(json!(1), "2024-05-04T08:00:00Z"),
            "status": prop(json!("full")),
            "name": prop(json!("Aix Rotonde")),
            "isUnderground": prop(json!(false)),
            "address": prop(json!({
                "addressLocality": "Aix-en-Provence", "postalCode": "13100"
            })),
            "location": point(5.4474, 43.5265),
            "scope": ["/Aix/Centre", "/Metropole"]
        },
        {
            "id": id_of("aubagne"), "type": "WasteContainer",
            "status": prop(json!("maintenance")),
            "name": prop(json!("Aubagne\\Gare")),
            "address": prop(json!({ "addressLocality": "Aubagne", "postalCode": "13400" })),
            "location": point(5.5708, 43.2927)
        },
        {
            "id": id_of("noisePort"), "type": "NoiseLevelObserved",
            "LAeq": observed(json!(65.5), "2024-05-01T22:00:00Z"),
            "LAmax": prop(json!(80)),
            "location": point(5.3720, 43.2960),
            "scope": "/Marseille/Centre"
        },
        {
            "id": id_of("noiseAix"), "type": "NoiseLevelObserved",
            "LAeq": observed(json!(48.0), "2024-05-02T22:00:00Z"),
            "LAmax": prop(json!(60)),
            "location": point(5.4450, 43.5280),
            "scope": "/Aix/Centre"
        },
        {
            "id": id_of("devBerre"), "type": "Device",
            "name": prop(json!("Probe Berre")),
            "batteryLevel": prop(json!(0.75)),
            "location": point(5.1600, 43.4500)
        },
        {
            "id": id_of("devHuveaune"), "type": "Device",
            "name": prop(json!("Probe Huveaune")),
            "batteryLevel": prop(json!(0.2)),
            "location": point(5.4300, 43.2800)
        },
        {
            "id": id_of("waterBerre"), "type": "WaterObserved",
            "flow": observed(json!(12.5), "2024-05-01T06:00:00Z"),
            "refDevice": rel(&id_of("devBerre")),
            "location": point(5.1600, 43.4500),
            "scope": "/Berre"
        },
        {
            "id": id_of("waterHuveaune"), "type": "WaterObserved",
            "flow": observed(json!(3.2), "2024-05-02T06:00:00Z"),
            "refDevice": rel(&id_of("devHuveaune")),
            "location": point(5.4300, 43.2800),
            "scope": "/Marseille/Est"
        },
        {
            "id": id_of("meteoMarignane"), "type": "WeatherObserved",
            "temperature": {
                "type": "Property", "value": 21.5, "unitCode": "CEL",
                "observedAt": "2024-05-01T12:00:00Z"
            },
            "precipitation": prop(json!(0)),
            "dateObserved": prop(json!("2024-05-01T12:00:00Z")),
            "location": point(5.2150, 43.4370)
        },
        {
            "id": id_of("meteoAubagne"), "type": "WeatherObserved",
            "temperature": observed(json!(-2.5), "2024-05-03T12:00:00Z"),
            "precipitation": prop(json!(4.2)),
            "dateObserved": prop(json!("2024-05-03T12:00:00Z")),
            "location": point(5.5600, 43.2900)
        }
    ]);
    let r = api.post("/entityOperations/create", &entities).await;
    assert_eq!(r.status, 201, "creating the dataset failed: {}", r.text);
}

fn keys_in(body: &Value) -> Vec<&'static str> {
    let items = body
        .as_array()
        .unwrap_or_else(|| panic!("a query result must be an array: {body}"));
    let mut keys: Vec<&'static str> = items
        .iter()
        .map(|e| key_of(e["id"].as_str().unwrap_or_else(|| panic!("no id in {e}"))))
        .collect();
    keys.sort_unstable();
    let distinct: BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "duplicates in {body}");
    keys
}

fn sorted(mut keys: Vec<&'static str>) -> Vec<&'static str> {
    keys.sort_unstable();
    keys
}

/// GET /entities with the given (URL-encoded) parameters.
async fn get(api: &Api, params: &[(&str, &str)]) -> Resp {
    api.send(api.req(Method::GET, "/entities").query(params))
        .await
}

/// The keys of the entities a GET /entities returns.
#[track_caller]
fn expect_keys(r: &Resp, what: &str) -> Vec<&'static str> {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    keys_in(&r.json())
}

async fn select(api: &Api, params: &[(&str, &str)]) -> Vec<&'static str> {
    let r = get(api, params).await;
    expect_keys(&r, &format!("{params:?}"))
}

/// Asserts, for each `q`, the entities selected (with the optional type).
async fn check_q(api: &Api, kind: Option<&str>, cases: &[(&str, Vec<&'static str>)]) {
    let mut failures = Vec::new();
    for (q, want) in cases {
        let mut params = vec![("q", *q)];
        if let Some(t) = kind {
            params.push(("type", t));
        }
        let r = get(api, &params).await;
        if r.status != 200 {
            failures.push(format!("q={q}: status {} {}", r.status, r.text));
            continue;
        }
        let got = keys_in(&r.json());
        if got != sorted(want.clone()) {
            failures.push(format!(
                "q={q} (type {kind:?}): expected {:?}, got {got:?}",
                sorted(want.clone())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const WC: Option<&str> = Some("WasteContainer");

#[tokio::test]
async fn q_numbers() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        WC,
        &[
            ("fillingLevel==0.85", vec!["port"]),
            ("fillingLevel!=0.85", vec!["panier", "nord", "aix"]),
            ("fillingLevel>0.4", vec!["port", "aix"]),
            ("fillingLevel>=0.4", vec!["port", "panier", "aix"]),
            ("fillingLevel<0.4", vec!["nord"]),
            ("fillingLevel<=0.4", vec!["panier", "nord"]),
            // An integer in the store equals the same number written as a decimal.
            ("fillingLevel==1", vec!["aix"]),
            ("fillingLevel==1.0", vec!["aix"]),
            ("fillingLevel==1e0", vec!["aix"]),
            ("fillingLevel>2", vec![]),
        ],
    )
    .await;
    check_q(
        &api,
        None,
        &[
            ("temperature>-5", vec!["meteoMarignane", "meteoAubagne"]),
            ("temperature<0", vec!["meteoAubagne"]),
            ("temperature==-2.5", vec!["meteoAubagne"]),
            ("LAeq>=48", vec!["noisePort", "noiseAix"]),
            ("LAeq>48", vec!["noisePort"]),
            ("precipitation==0", vec!["meteoMarignane"]),
            ("batteryLevel<0.5", vec!["devHuveaune"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_strings_quotes_and_escapes() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        WC,
        &[
            (r#"status=="ok""#, vec!["port", "nord"]),
            (r#"status!="ok""#, vec!["panier", "aix", "aubagne"]),
            (r#"name=="Vieux-Port""#, vec!["port"]),
            // Escaped double quote inside a quoted string.
            (r#"name=="Panier \"Haut\"""#, vec!["panier"]),
            // Escaped backslash.
            (r#"name=="Aubagne\\Gare""#, vec!["aubagne"]),
            // Separators of the language inside a quoted string are plain text.
            (r#"name=="Nord (1), bis; 15e|x""#, vec!["nord"]),
            // Strings compare lexically.
            (r#"name>"P""#, vec!["port", "panier"]),
            (r#"name<"B""#, vec!["aix", "aubagne"]),
            // Case matters.
            (r#"status=="OK""#, vec![]),
            // An array value matches if one of its items does.
            (r#"wasteType=="paper""#, vec!["port"]),
            (r#"wasteType=="glass""#, vec!["panier"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_booleans() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        WC,
        &[
            ("isUnderground==true", vec!["panier"]),
            ("isUnderground==false", vec!["port", "nord", "aix"]),
            ("isUnderground!=true", vec!["port", "nord", "aix"]),
            // A boolean is not the string "true".
            (r#"isUnderground=="true""#, vec![]),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_date_times_in_observed_at_and_values() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        None,
        &[
            (
                "fillingLevel.observedAt>2024-05-02T00:00:00Z",
                vec!["panier", "nord", "aix"],
            ),
            (
                "fillingLevel.observedAt>=2024-05-02T08:00:00Z",
                vec!["panier", "nord", "aix"],
            ),
            ("fillingLevel.observedAt<2024-05-02T08:00:00Z", vec!["port"]),
            (
                "fillingLevel.observedAt==2024-05-01T08:00:00Z",
                vec!["port"],
            ),
            // The same instant written with milliseconds.
            (
                "fillingLevel.observedAt==2024-05-01T08:00:00.000Z",
                vec!["port"],
            ),
            (
                "fillingLevel.observedAt==2024-05-02T00:00:00Z..2024-05-03T12:00:00Z",
                vec!["panier", "nord"],
            ),
            ("LAeq.observedAt<2024-05-02T00:00:00Z", vec!["noisePort"]),
            // Date-times as Property values.
            ("dateObserved<2024-05-02T00:00:00Z", vec!["meteoMarignane"]),
            ("dateObserved>2024-05-02T00:00:00Z", vec!["meteoAubagne"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_ranges() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        WC,
        &[
            ("fillingLevel==0.3..0.9", vec!["port", "panier"]),
            // Bounds are inclusive.
            ("fillingLevel==0.40..0.85", vec!["port", "panier"]),
            ("fillingLevel!=0.3..0.9", vec!["nord", "aix"]),
            ("fillingLevel==2..3", vec![]),
            (r#"name=="A".."B""#, vec!["aix", "aubagne"]),
        ],
    )
    .await;
    check_q(&api, None, &[("temperature==-5..0", vec!["meteoAubagne"])]).await;
}

#[tokio::test]
async fn q_value_lists() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        WC,
        &[
            (r#"status=="ok","full""#, vec!["port", "nord", "aix"]),
            (r#"status!="ok","full""#, vec!["panier", "aubagne"]),
            ("fillingLevel==0.1,0.85", vec!["port", "nord"]),
            ("fillingLevel!=0.1,0.85", vec!["panier", "aix"]),
            (
                r#"address[postalCode]=="13001","13002""#,
                vec!["port", "panier"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_regex_match_and_no_match() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        WC,
        &[
            (r#"name~="^A""#, vec!["aix", "aubagne"]),
            (r#"name!~="^A""#, vec!["port", "panier", "nord"]),
            (r#"name~="Port$""#, vec!["port"]),
            (r#"status~="^(ok|full)$""#, vec!["port", "nord", "aix"]),
            (r#"address[addressLocality]~="^Aix""#, vec!["aix"]),
            (r#"name~="[0-9]+e""#, vec!["nord"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_existence_and_negation() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        None,
        &[
            ("fillingLevel", vec!["port", "panier", "nord", "aix"]),
            ("refDevice", vec!["port", "waterBerre", "waterHuveaune"]),
            ("LAeq", vec!["noisePort", "noiseAix"]),
            ("nothingLikeThis", vec![]),
            // Existence of a sub-attribute and of observedAt.
            ("fillingLevel.reliability", vec!["port", "panier"]),
            ("temperature.unitCode", vec!["meteoMarignane"]),
            // Existence combined with a negated comparison.
            ("fillingLevel;status!=\"ok\"", vec!["panier", "aix"]),
        ],
    )
    .await;
    // Negated operators never select an entity that lacks the attribute.
    check_q(
        &api,
        WC,
        &[
            ("fillingLevel!=0.85", vec!["panier", "nord", "aix"]),
            (r#"isUnderground!=true"#, vec!["port", "nord", "aix"]),
            (r#"status!~="^ok$""#, vec!["panier", "aix", "aubagne"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_and_or_precedence_and_parentheses() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        WC,
        &[
            (r#"status=="ok";fillingLevel>0.5"#, vec!["port"]),
            (
                r#"status=="ok"|fillingLevel>0.5"#,
                vec!["port", "nord", "aix"],
            ),
            // `;` binds tighter than `|`: full OR (ok AND < 0.5).
            (
                r#"status=="full"|status=="ok";fillingLevel<0.5"#,
                vec!["aix", "nord"],
            ),
            (
                r#"status=="ok";fillingLevel<0.5|status=="full""#,
                vec!["aix", "nord"],
            ),
            // Parentheses override it.
            (
                r#"(status=="full"|status=="ok");fillingLevel<0.5"#,
                vec!["nord"],
            ),
            (
                r#"status=="ok";(fillingLevel<0.5|status=="full")"#,
                vec!["nord"],
            ),
            (
                r#"isUnderground==false;(status=="full"|fillingLevel<0.2)"#,
                vec!["aix", "nord"],
            ),
            (
                r#"((status=="lidOpen"|status=="maintenance");(name~="^P"|name~="^A"))"#,
                vec!["panier", "aubagne"],
            ),
            (
                r#"(fillingLevel>0.9|fillingLevel<0.2);(isUnderground==false|status=="x")"#,
                vec!["aix", "nord"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_sub_attribute_and_compound_paths() {
    let api = api();
    metropolis(&api).await;
    check_q(
        &api,
        None,
        &[
            ("fillingLevel.reliability>0.5", vec!["port"]),
            ("fillingLevel.reliability<0.5", vec!["panier"]),
            (r#"temperature.unitCode=="CEL""#, vec!["meteoMarignane"]),
            (
                r#"address[addressLocality]=="Marseille""#,
                vec!["port", "panier", "nord"],
            ),
            (r#"address[postalCode]=="13100""#, vec!["aix"]),
            ("specs[dimensions][height]>1", vec!["port"]),
            ("specs[dimensions][width]==0.8", vec!["port", "panier"]),
            (r#"address[country]=="FR""#, vec![]),
        ],
    )
    .await;
}

#[tokio::test]
async fn q_relationships_compared_to_uris() {
    let api = api();
    metropolis(&api).await;
    let berre = id_of("devBerre");
    let huveaune = id_of("devHuveaune");
    let unquoted = format!("refDevice=={berre}");
    let quoted = format!("refDevice==\"{berre}\"");
    let list = format!("refDevice=={berre},{huveaune}");
    let not = format!("refDevice!={berre}");
    check_q(
        &api,
        Some("WaterObserved"),
        &[
            (unquoted.as_str(), vec!["waterBerre"]),
            (quoted.as_str(), vec!["waterBerre"]),
            (list.as_str(), vec!["waterBerre", "waterHuveaune"]),
            (not.as_str(), vec!["waterHuveaune"]),
        ],
    )
    .await;
    let any_type = format!("refDevice=={huveaune}");
    check_q(
        &api,
        None,
        &[(any_type.as_str(), vec!["port", "waterHuveaune"])],
    )
    .await;
}

#[tokio::test]
async fn type_expressions() {
    let api = api();
    metropolis(&api).await;
    let wc = vec!["port", "panier", "nord", "aix", "aubagne"];
    let devices = vec!["aix", "devBerre", "devHuveaune"];
    let mut wc_or_dev: Vec<&str> = wc.iter().chain(devices.iter()).copied().collect();
    wc_or_dev.sort_unstable();
    wc_or_dev.dedup();
    let cases: Vec<(&str, Vec<&'static str>)> = vec![
        ("WasteContainer", wc.clone()),
        ("Device", devices.clone()),
        ("WasteContainer,Device", wc_or_dev.clone()),
        ("WasteContainer|Device", wc_or_dev.clone()),
        ("WasteContainer;Device", vec!["aix"]),
        ("Device;WasteContainer", vec!["aix"]),
        (
            "(WasteContainer;Device)|NoiseLevelObserved",
            vec!["aix", "noisePort", "noiseAix"],
        ),
        ("Device;(WasteContainer|NoiseLevelObserved)", vec!["aix"]),
        ("(Device;NoiseLevelObserved)", vec![]),
        (
            "WaterObserved,WeatherObserved",
            vec![
                "waterBerre",
                "waterHuveaune",
                "meteoMarignane",
                "meteoAubagne",
            ],
        ),
        ("Unknown", vec![]),
        // The full IRI of a type in the default context.
        (
            "https://uri.etsi.org/ngsi-ld/default-context/NoiseLevelObserved",
            vec!["noisePort", "noiseAix"],
        ),
    ];
    let mut failures = Vec::new();
    for (t, want) in cases {
        let r = get(&api, &[("type", t)]).await;
        if r.status != 200 {
            failures.push(format!("type={t}: {} {}", r.status, r.text));
            continue;
        }
        let got = keys_in(&r.json());
        if got != sorted(want.clone()) {
            failures.push(format!(
                "type={t}: expected {:?}, got {got:?}",
                sorted(want)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A type expression combines with q.
    assert_eq!(
        select(
            &api,
            &[("type", "WasteContainer;Device"), ("q", "fillingLevel>0.5")]
        )
        .await,
        vec!["aix"]
    );
}

#[tokio::test]
async fn type_star_selects_every_type() {
    // NGSI-LD 1.8 clause 6.4.3.2 / OpenAPI Query.type: "*" is allowed and selects all types.
    let api = api();
    metropolis(&api).await;
    let r = get(&api, &[("type", "*")]).await;
    assert_eq!(expect_keys(&r, "type=*"), sorted(KEYS.to_vec()));
}

#[tokio::test]
async fn scope_queries() {
    let api = api();
    metropolis(&api).await;
    let cases: Vec<(&str, Vec<&'static str>)> = vec![
        ("/Marseille/Centre", vec!["port", "noisePort"]),
        ("/Marseille/Centre/#", vec!["port", "panier", "noisePort"]),
        (
            "/Marseille/+",
            vec!["port", "nord", "noisePort", "waterHuveaune"],
        ),
        ("/Marseille/+/Panier", vec!["panier"]),
        (
            "/Marseille/#",
            vec!["port", "panier", "nord", "noisePort", "waterHuveaune"],
        ),
        (
            "/Marseille/Centre,/Aix/Centre",
            vec!["port", "noisePort", "aix", "noiseAix"],
        ),
        ("/Aix/Centre;/Metropole", vec!["aix"]),
        ("/Marseille/Centre;/Metropole", vec![]),
        (
            "/#",
            vec![
                "port",
                "panier",
                "nord",
                "aix",
                "noisePort",
                "noiseAix",
                "waterBerre",
                "waterHuveaune",
            ],
        ),
        ("/Lyon", vec![]),
        ("/Marseille", vec![]),
    ];
    let mut failures = Vec::new();
    for (s, want) in cases {
        let r = get(&api, &[("scopeQ", s)]).await;
        if r.status != 200 {
            failures.push(format!("scopeQ={s}: {} {}", r.status, r.text));
            continue;
        }
        let got = keys_in(&r.json());
        if got != sorted(want.clone()) {
            failures.push(format!(
                "scopeQ={s}: expected {:?}, got {got:?}",
                sorted(want)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        select(
            &api,
            &[("type", "WasteContainer"), ("scopeQ", "/Marseille/#")]
        )
        .await,
        vec!["nord", "panier", "port"]
    );
}

#[tokio::test]
async fn id_list_and_id_pattern_with_q() {
    let api = api();
    metropolis(&api).await;
    let ids = format!("{},{},{}", id_of("port"), id_of("nord"), id_of("noiseAix"));
    assert_eq!(
        select(&api, &[("id", &ids), ("local", "true")]).await,
        sorted(vec!["port", "nord", "noiseAix"])
    );
    assert_eq!(
        select(&api, &[("id", &ids), ("q", "fillingLevel>0.5")]).await,
        vec!["port"]
    );
    assert_eq!(
        select(
            &api,
            &[
                ("idPattern", "^urn:ngsi-ld:WaterObserved:.*"),
                ("local", "true")
            ]
        )
        .await,
        sorted(vec!["waterBerre", "waterHuveaune"])
    );
    assert_eq!(
        select(
            &api,
            &[
                ("idPattern", ".*Aix$|.*aix$"),
                ("type", "WasteContainer,NoiseLevelObserved")
            ]
        )
        .await,
        sorted(vec!["aix", "noiseAix"])
    );
}

fn members(e: &Value) -> BTreeSet<String> {
    e.as_object()
        .unwrap_or_else(|| panic!("an entity must be an object: {e}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn projection_attrs_pick_omit() {
    let api = api();
    metropolis(&api).await;

    // attrs: only the named attributes, entities with none of them left out.
    let r = get(
        &api,
        &[
            ("type", "WasteContainer,Device"),
            ("attrs", "fillingLevel,status"),
        ],
    )
    .await;
    let body = r.expect(200).json();
    assert_eq!(
        keys_in(&body),
        sorted(vec!["port", "panier", "nord", "aix", "aubagne"])
    );
    for e in body.as_array().expect("array") {
        let m = members(e);
        // (scope is an entity member, not an attribute: attrs may leave it.)
        assert!(
            m.is_subset(&set(&["id", "type", "scope", "fillingLevel", "status"])),
            "attrs projection leaks members: {e}"
        );
        assert!(m.contains("status"), "{e}");
    }

    // pick: entity members, id and type included only when named.
    let r = get(
        &api,
        &[("type", "WasteContainer"), ("pick", "id,fillingLevel")],
    )
    .await;
    let body = r.expect(200).json();
    assert_eq!(keys_in(&body).len(), 5);
    for e in body.as_array().expect("array") {
        let m = members(e);
        assert!(
            m.is_subset(&set(&["id", "fillingLevel"])),
            "pick=id,fillingLevel returned {e}"
        );
        if e["id"] == json!(id_of("port")) {
            assert_eq!(e["fillingLevel"]["value"], json!(0.85));
        }
    }

    // omit: everything but the named members.
    let r = get(
        &api,
        &[
            ("type", "WasteContainer"),
            ("omit", "location,address,name,type"),
        ],
    )
    .await;
    let body = r.expect(200).json();
    for e in body.as_array().expect("array") {
        let m = members(e);
        for gone in ["location", "address", "name", "type"] {
            assert!(!m.contains(gone), "omit left {gone} in {e}");
        }
        assert!(m.contains("id") && m.contains("status"), "{e}");
    }

    // Projection and q are independent: q may test an attribute that is not returned.
    let r = get(
        &api,
        &[
            ("type", "WasteContainer"),
            ("q", "fillingLevel>0.5"),
            ("attrs", "name"),
        ],
    )
    .await;
    let body = r.expect(200).json();
    assert_eq!(keys_in(&body), vec!["aix", "port"]);
    for e in body.as_array().expect("array") {
        assert!(
            members(e).is_subset(&set(&["id", "type", "scope", "name"])),
            "{e}"
        );
        assert!(e.get("name").is_some(), "{e}");
    }
}

#[tokio::test]
async fn representations_key_values_and_concise() {
    let api = api();
    metropolis(&api).await;
    let ids = format!("{},{}", id_of("port"), id_of("waterBerre"));

    let r = get(
        &api,
        &[("id", &ids), ("options", "keyValues"), ("local", "true")],
    )
    .await;
    let body = r.expect(200).json();
    assert_eq!(keys_in(&body), sorted(vec!["port", "waterBerre"]));
    for e in body.as_array().expect("array") {
        if e["id"] == json!(id_of("port")) {
            assert_eq!(e["type"], json!("WasteContainer"));
            assert_eq!(e["fillingLevel"], json!(0.85));
            assert_eq!(e["status"], json!("ok"));
            assert_eq!(e["isUnderground"], json!(false));
            assert_eq!(e["address"]["postalCode"], json!("13001"));
            assert_eq!(
                e["location"],
                json!({ "type": "Point", "coordinates": [5.3698, 43.2951] })
            );
            assert_eq!(e["refDevice"], json!(id_of("devHuveaune")));
        } else {
            assert_eq!(e["flow"], json!(12.5));
            assert_eq!(e["refDevice"], json!(id_of("devBerre")));
        }
    }

    let r = get(
        &api,
        &[("id", &ids), ("format", "concise"), ("local", "true")],
    )
    .await;
    let body = r.expect(200).json();
    for e in body.as_array().expect("array") {
        if e["id"] == json!(id_of("port")) {
            // Concise: no "type" member on attributes, values kept with their metadata.
            assert_eq!(e["fillingLevel"]["value"], json!(0.85));
            assert_eq!(
                e["fillingLevel"]["observedAt"].as_str().map(|s| &s[..19]),
                Some("2024-05-01T08:00:00")
            );
            assert!(e["fillingLevel"].get("type").is_none(), "{e}");
            assert_eq!(e["fillingLevel"]["reliability"], json!(0.9));
            assert_eq!(e["status"], json!("ok"));
            assert_eq!(e["refDevice"], json!({ "object": id_of("devHuveaune") }));
        } else {
            assert_eq!(e["refDevice"], json!({ "object": id_of("devBerre") }));
        }
    }

    // keyValues with q and attrs together.
    let r = get(
        &api,
        &[
            ("type", "NoiseLevelObserved"),
            ("q", "LAeq>50"),
            ("attrs", "LAeq"),
            ("options", "keyValues"),
        ],
    )
    .await;
    let mut v = r.expect(200).json();
    // scope is an entity member, not an attribute: attrs may leave it.
    if let Some(e) = v.get_mut(0).and_then(Value::as_object_mut) {
        e.remove("scope");
    }
    assert_eq!(
        v,
        json!([{ "id": id_of("noisePort"), "type": "NoiseLevelObserved", "LAeq": 65.5 }])
    );
}

/// The `rel="next"` / `rel="prev"` targets of a response's Link headers.
fn link_target(r: &Resp, rel: &str) -> Option<String> {
    let wanted = format!("rel=\"{rel}\"");
    r.headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(", <").map(str::to_string).collect::<Vec<_>>())
        .find(|l| l.split(';').any(|p| p.trim() == wanted))
        .map(|l| {
            let l = l.trim().trim_start_matches('<');
            l[..l.find('>').unwrap_or_else(|| panic!("bad Link {l}"))].to_string()
        })
}

/// 23 WasteContainers: enough for several pages.
async fn many_containers(api: &Api) -> Vec<String> {
    let entities: Vec<Value> = (0..23)
        .map(|i| {
            json!({
                "id": format!("urn:ngsi-ld:WasteContainer:bin{i:02}"),
                "type": "WasteContainer",
                "fillingLevel": prop(json!(i as f64 / 22.0)),
                "location": point(5.0 + i as f64 * 0.03, 43.15 + i as f64 * 0.02),
            })
        })
        .collect();
    let r = api
        .post("/entityOperations/create", &Value::Array(entities))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (0..23)
        .map(|i| format!("urn:ngsi-ld:WasteContainer:bin{i:02}"))
        .collect()
}

#[tokio::test]
async fn paging_with_limit_offset_walks_everything_once() {
    let api = api();
    let all = many_containers(&api).await;
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let off = offset.to_string();
        let r = get(
            &api,
            &[
                ("type", "WasteContainer"),
                ("limit", "5"),
                ("offset", &off),
                ("count", "true"),
            ],
        )
        .await;
        r.expect(200);
        assert_eq!(r.header("NGSILD-Results-Count").as_deref(), Some("23"));
        let page = ids(&r.json());
        let want_len = 5.min(23 - offset.min(23));
        assert_eq!(page.len(), want_len, "page at offset {offset}");
        if offset > 0 {
            assert!(
                link_target(&r, "prev").is_some(),
                "no prev link at {offset}"
            );
        } else {
            assert!(
                link_target(&r, "prev").is_none(),
                "prev link on the first page"
            );
        }
        if page.is_empty() {
            break;
        }
        seen.extend(page);
        offset += 5;
    }
    assert_eq!(offset, 25);
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "an entity appeared on two pages"
    );
    let mut seen = seen.clone();
    seen.sort();
    assert_eq!(seen, all);

    // The same walk with a q filter: 12 entities with fillingLevel >= 0.5 (i >= 11).
    let mut seen = Vec::new();
    for offset in (0..15).step_by(4) {
        let off = offset.to_string();
        let r = get(
            &api,
            &[
                ("type", "WasteContainer"),
                ("q", "fillingLevel>=0.5"),
                ("limit", "4"),
                ("offset", &off),
                ("count", "true"),
            ],
        )
        .await;
        assert_eq!(
            r.expect(200).header("NGSILD-Results-Count").as_deref(),
            Some("12")
        );
        seen.extend(ids(&r.json()));
    }
    seen.sort();
    assert_eq!(seen, all[11..].to_vec());
}

#[tokio::test]
async fn paging_follows_next_links_to_the_end() {
    let api = api();
    let all = many_containers(&api).await;
    let first = get(&api, &[("type", "WasteContainer"), ("limit", "6")]).await;
    first.expect(200);
    let mut seen = ids(&first.json());
    assert_eq!(seen.len(), 6);
    let mut next = link_target(&first, "next");
    let mut pages = 1;
    while let Some(target) = next {
        pages += 1;
        assert!(pages <= 10, "the next links do not end");
        let url = url::Url::parse(&api.base_url)
            .and_then(|b| b.join(&target))
            .unwrap_or_else(|e| panic!("the next link {target} is not a URL reference: {e}"));
        let r = api.send(api.raw(Method::GET, url.as_str())).await;
        r.expect(200);
        let page = ids(&r.json());
        assert!(
            !page.is_empty(),
            "a next link led to an empty page: {target}"
        );
        assert!(
            link_target(&r, "prev").is_some(),
            "page {pages} has no prev link"
        );
        seen.extend(page);
        next = link_target(&r, "next");
    }
    assert_eq!(pages, 4, "23 entities in pages of 6");
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "an entity appeared on two pages"
    );
    seen.sort();
    assert_eq!(seen, all);

    // The links keep the selection: following them with q keeps filtering.
    let first = get(
        &api,
        &[
            ("type", "WasteContainer"),
            ("q", "fillingLevel<0.5"),
            ("limit", "5"),
        ],
    )
    .await;
    let mut seen = ids(&first.expect(200).json());
    let mut next = link_target(&first, "next");
    while let Some(target) = next {
        assert!(seen.len() < 23, "the next links do not end");
        let url = url::Url::parse(&api.base_url)
            .and_then(|b| b.join(&target))
            .unwrap_or_else(|e| panic!("bad next link {target}: {e}"));
        let r = api.send(api.raw(Method::GET, url.as_str())).await;
        seen.extend(ids(&r.expect(200).json()));
        next = link_target(&r, "next");
    }
    seen.sort();
    assert_eq!(
        seen,
        all[..11].to_vec(),
        "fillingLevel < 0.5 is bins 0..=10"
    );
}

#[tokio::test]
async fn count_header() {
    let api = api();
    metropolis(&api).await;
    let r = get(
        &api,
        &[
            ("type", "WasteContainer"),
            ("count", "true"),
            ("limit", "2"),
        ],
    )
    .await;
    r.expect(200);
    assert_eq!(r.header("NGSILD-Results-Count").as_deref(), Some("5"));
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    let r = get(&api, &[("q", "fillingLevel>0.3"), ("count", "true")]).await;
    assert_eq!(
        r.expect(200).header("NGSILD-Results-Count").as_deref(),
        Some("3")
    );
    let r = get(
        &api,
        &[
            ("scopeQ", "/Marseille/#"),
            ("count", "true"),
            ("limit", "0"),
        ],
    )
    .await;
    assert_eq!(
        r.expect(200).header("NGSILD-Results-Count").as_deref(),
        Some("5")
    );
    assert_eq!(r.json(), json!([]));
    let r = get(&api, &[("type", "Nothing"), ("count", "true")]).await;
    assert_eq!(
        r.expect(200).header("NGSILD-Results-Count").as_deref(),
        Some("0")
    );
    let r = get(&api, &[("type", "WasteContainer"), ("count", "false")]).await;
    assert!(r.expect(200).header("NGSILD-Results-Count").is_none());
}

async fn post_query(api: &Api, body: &Value, params: &[(&str, &str)]) -> Resp {
    api.send(
        api.req(Method::POST, "/entityOperations/query")
            .query(params)
            .header("Content-Type", "application/json")
            .body(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn post_query_is_equivalent_to_get() {
    let api = api();
    metropolis(&api).await;
    let berre_q = format!("refDevice=={}", id_of("devBerre"));
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }],
                    "q": "fillingLevel>0.3" }),
            vec![("type", "WasteContainer"), ("q", "fillingLevel>0.3")],
        ),
        (
            json!({ "type": "Query",
                    "entities": [{ "type": "WasteContainer" }, { "type": "NoiseLevelObserved" }] }),
            vec![("type", "WasteContainer,NoiseLevelObserved")],
        ),
        (
            json!({ "type": "Query", "entities": [{ "type": "WasteContainer;Device" }] }),
            vec![("type", "WasteContainer;Device")],
        ),
        (
            json!({ "type": "Query", "entities": [{ "type": "WaterObserved" }],
                    "q": berre_q }),
            vec![("type", "WaterObserved"), ("q", berre_q.as_str())],
        ),
        (
            json!({ "type": "Query", "scopeQ": "/Marseille/#" }),
            vec![("scopeQ", "/Marseille/#")],
        ),
        (
            json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }],
                    "attrs": ["status"], "q": "status==\"ok\"|fillingLevel>0.9" }),
            vec![
                ("type", "WasteContainer"),
                ("attrs", "status"),
                ("q", "status==\"ok\"|fillingLevel>0.9"),
            ],
        ),
        (
            json!({ "type": "Query",
                    "entities": [{ "idPattern": "^urn:ngsi-ld:WasteContainer:(port|aix)$",
                                   "type": "WasteContainer" }] }),
            vec![
                ("type", "WasteContainer"),
                ("idPattern", "^urn:ngsi-ld:WasteContainer:(port|aix)$"),
            ],
        ),
        (
            json!({ "type": "Query",
                    "geoQ": { "georel": "near;maxDistance==500", "geometry": "Point",
                              "coordinates": [5.3698, 43.2951] } }),
            vec![
                ("georel", "near;maxDistance==500"),
                ("geometry", "Point"),
                ("coordinates", "[5.3698,43.2951]"),
            ],
        ),
        (
            json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }],
                    "geoQ": { "georel": "within", "geometry": "Polygon",
                              "coordinates": [[[5.3,43.25],[5.42,43.25],[5.42,43.4],[5.3,43.4],[5.3,43.25]]] } }),
            vec![
                ("type", "WasteContainer"),
                ("georel", "within"),
                ("geometry", "Polygon"),
                (
                    "coordinates",
                    "[[[5.3,43.25],[5.42,43.25],[5.42,43.4],[5.3,43.4],[5.3,43.25]]]",
                ),
            ],
        ),
    ];
    for (body, params) in &cases {
        let g = get(&api, params).await;
        g.expect(200);
        let p = post_query(&api, body, &[]).await;
        assert_eq!(p.status, 200, "POST {body}: {}", p.text);
        let (gv, pv) = (g.json(), p.json());
        assert!(
            !gv.as_array().expect("array").is_empty(),
            "the case {params:?} should select something"
        );
        assert_eq!(keys_in(&pv), keys_in(&gv), "POST {body} vs GET {params:?}");
        // Same representation too.
        let mut ga = gv.as_array().expect("array").clone();
        let mut pa = pv.as_array().expect("array").clone();
        ga.sort_by_key(|e| e["id"].to_string());
        pa.sort_by_key(|e| e["id"].to_string());
        assert_eq!(pa, ga, "POST {body} vs GET {params:?}");
    }

    // Paging and count go in the URL of the POST.
    let body = json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }] });
    let mut seen = Vec::new();
    for offset in ["0", "2", "4"] {
        let r = post_query(
            &api,
            &body,
            &[("limit", "2"), ("offset", offset), ("count", "true")],
        )
        .await;
        r.expect(200);
        assert_eq!(r.header("NGSILD-Results-Count").as_deref(), Some("5"));
        seen.extend(keys_in(&r.json()));
    }
    assert_eq!(
        sorted(seen),
        sorted(vec!["port", "panier", "nord", "aix", "aubagne"])
    );
    let r = post_query(&api, &body, &[("options", "keyValues"), ("limit", "1000")]).await;
    let v = r.expect(200).json();
    assert!(v
        .as_array()
        .expect("array")
        .iter()
        .any(|e| e["fillingLevel"] == json!(0.85)));

    // A body that is not a Query.
    let r = post_query(&api, &json!({ "type": "Entity" }), &[]).await;
    assert_problem_any(&r, 400, BAD_BODY);
    let r = post_query(
        &api,
        &json!({ "type": "Query", "q": "(fillingLevel>1" }),
        &[],
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
}

/// Asserts a 400 BadRequestData whose detail mentions one of `words`.
async fn bad(api: &Api, params: &[(&str, &str)], words: &[&str], failures: &mut Vec<String>) {
    let r = get(api, params).await;
    if r.status != 400 {
        failures.push(format!(
            "{params:?}: expected 400, got {} {}",
            r.status, r.text
        ));
        return;
    }
    let body = assert_problem(&r, 400, "BadRequestData");
    let detail = body["detail"].as_str().unwrap_or_default().to_lowercase();
    if !words.iter().any(|w| detail.contains(&w.to_lowercase())) {
        failures.push(format!(
            "{params:?}: the detail {detail:?} names none of {words:?}"
        ));
    }
}

#[tokio::test]
async fn bad_queries_are_400_with_a_detail_naming_the_problem() {
    let api = api();
    metropolis(&api).await;
    let mut failures = Vec::new();
    let t = ("type", "WasteContainer");
    // Unbalanced parentheses, both ways.
    bad(
        &api,
        &[t, ("q", r#"(status=="ok""#)],
        &["')'", "parenthes"],
        &mut failures,
    )
    .await;
    bad(&api, &[t, ("q", r#"status=="ok")"#)], &[")"], &mut failures).await;
    bad(
        &api,
        &[
            t,
            ("q", r#"((status=="ok"|fillingLevel>1);isUnderground==true"#),
        ],
        &["')'", "parenthes"],
        &mut failures,
    )
    .await;
    // Unknown operators.
    for q in [
        "fillingLevel=>0.5",
        "fillingLevel=~\"x\"",
        "fillingLevel<>0.5",
    ] {
        bad(&api, &[t, ("q", q)], &["operator", "value"], &mut failures).await;
    }
    // Unterminated string.
    bad(
        &api,
        &[t, ("q", r#"name=="Vieux"#)],
        &["unterminated"],
        &mut failures,
    )
    .await;
    bad(
        &api,
        &[t, ("q", r#"name=="Vieux\""#)],
        &["unterminated"],
        &mut failures,
    )
    .await;
    // Invalid regular expression.
    bad(
        &api,
        &[t, ("q", r#"name~="(unclosed""#)],
        &["regular expression", "regex"],
        &mut failures,
    )
    .await;
    // Missing value, empty query, dangling logical operator.
    bad(
        &api,
        &[t, ("q", "fillingLevel==")],
        &["value"],
        &mut failures,
    )
    .await;
    bad(&api, &[t, ("q", "")], &["empty", "q"], &mut failures).await;
    bad(
        &api,
        &[t, ("q", r#"status=="ok";"#)],
        &["attribute", "expected"],
        &mut failures,
    )
    .await;
    // Ranges and lists only go with == and !=.
    bad(
        &api,
        &[t, ("q", "fillingLevel>0.1..0.5")],
        &["range", "=="],
        &mut failures,
    )
    .await;
    // Error messages point at the position.
    let r = get(&api, &[t, ("q", r#"status=="ok";fillingLevel=>1"#)]).await;
    let detail = assert_problem(&r, 400, "BadRequestData")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !(detail.contains("position") || detail.contains("25")) {
        failures.push(format!(
            "the q error does not point at the position: {detail}"
        ));
    }
    // Type expressions.
    bad(
        &api,
        &[("type", "(WasteContainer;Device")],
        &["')'", "parenthes"],
        &mut failures,
    )
    .await;
    bad(
        &api,
        &[("type", "WasteContainer,")],
        &["type"],
        &mut failures,
    )
    .await;
    // scopeQ without a leading slash.
    bad(
        &api,
        &[("scopeQ", "Marseille/Centre")],
        &["scope"],
        &mut failures,
    )
    .await;
    bad(
        &api,
        &[("scopeQ", "/Marseille/#/Centre")],
        &["scope"],
        &mut failures,
    )
    .await;
    // Paging.
    bad(&api, &[t, ("limit", "-1")], &["limit"], &mut failures).await;
    bad(&api, &[t, ("offset", "-3")], &["offset"], &mut failures).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Over the maximum page size: 403 TooManyResults.
    let r = get(&api, &[t, ("limit", "5000")]).await;
    let body = assert_problem(&r, 403, "TooManyResults");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("limit")),
        "{body}"
    );
}

/// `!attr` selects the entities without the attribute (clause 4.9), alone, in a
/// conjunction, and in a query without a type; it negates existence only.
#[tokio::test]
async fn q_negated_existence() {
    let api = api();
    metropolis(&api).await;
    let all = select(&api, &[("type", "WasteContainer")]).await;
    let with = select(&api, &[("type", "WasteContainer"), ("q", "refDevice")]).await;
    let without = select(&api, &[("type", "WasteContainer"), ("q", "!refDevice")]).await;
    assert!(
        !with.is_empty() && !without.is_empty(),
        "{with:?} {without:?}"
    );
    let mut union: Vec<&str> = with.iter().chain(without.iter()).copied().collect();
    union.sort();
    assert_eq!(
        union,
        sorted(all.clone()),
        "!refDevice is the complement of refDevice"
    );
    check_q(
        &api,
        WC,
        &[
            ("!refDevice;fillingLevel>=0.4", {
                let high = select(
                    &api,
                    &[("type", "WasteContainer"), ("q", "fillingLevel>=0.4")],
                )
                .await;
                high.into_iter().filter(|k| without.contains(k)).collect()
            }),
            ("!neverSeen", all.clone()),
        ],
    )
    .await;
    // Without a type: every entity of the tenant lacking fillingLevel.
    let no_level = select(&api, &[("q", "!fillingLevel")]).await;
    assert!(
        no_level.contains(&"meteoAubagne") && !no_level.contains(&"port"),
        "{no_level:?}"
    );
    let r = get(
        &api,
        &[("type", "WasteContainer"), ("q", "!fillingLevel>0.4")],
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
}

/// `attr[*]` compares any member of a compound value, e.g. any language of a
/// LanguageProperty, or any key of a JSON object value.
#[tokio::test]
async fn q_wildcard_key() {
    let api = api();
    let (a, b) = (uid("Street"), uid("Street"));
    api.post(
        "/entities",
        &json!({ "id": a, "type": "Street",
        "label": { "type": "LanguageProperty", "languageMap": { "fr": "rouge", "en": "red" } } }),
    )
    .await
    .expect(201);
    api.post(
        "/entities",
        &json!({ "id": b, "type": "Street",
        "label": { "type": "LanguageProperty", "languageMap": { "it": "rosso", "en": "red" } } }),
    )
    .await
    .expect(201);
    let ids = |r: Resp| -> Vec<String> {
        let mut v: Vec<String> = r
            .json()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let r = api
        .get("/entities?type=Street&q=label%5B*%5D==%22rouge%22")
        .await;
    assert_eq!(ids(r), vec![a.clone()]);
    let r = api
        .get("/entities?type=Street&q=label%5B*%5D==%22red%22")
        .await;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(ids(r), both);
    let r = api
        .get("/entities?type=Street&q=label%5Bfr%5D==%22red%22")
        .await;
    assert!(ids(r).is_empty());
}
