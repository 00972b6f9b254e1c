//! The demo federation's policy files, embedded for tools and tests that need a ready-made policy
//! set. The same files live under `policies/samples/<dept>/`; each department's `datasets.toml`
//! belongs to the gateway (`gateway/samples/<dept>/`), not to this crate. `causeway demo` copies
//! these files into `<dept>/policies/`.

/// The departments of the demo federation that have sample policy directories.
pub const DEPARTMENTS: [&str; 3] = ["civil-registry", "tax-office", "social-welfare"];

macro_rules! sample {
    ($dept:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!("../samples/", $dept, "/", $name)),
        )
    };
}

const CIVIL_REGISTRY: &[(&str, &str)] = &[
    sample!("civil-registry", "protected-persons.toml"),
    sample!("civil-registry", "purposes.toml"),
    sample!("civil-registry", "residents.test.toml"),
    sample!("civil-registry", "tax-residents.toml"),
    sample!("civil-registry", "welfare-residents.toml"),
];

const TAX_OFFICE: &[(&str, &str)] = &[
    sample!("tax-office", "income.test.toml"),
    sample!("tax-office", "purposes.toml"),
    sample!("tax-office", "welfare-income.toml"),
];

const SOCIAL_WELFARE: &[(&str, &str)] = &[
    sample!("social-welfare", "benefits.test.toml"),
    sample!("social-welfare", "purposes.toml"),
];

/// The sample files of one department's policy directory as `(file name, content)` pairs (policy
/// files and `*.test.toml` files), or an empty slice for an unknown department.
pub fn files(dept: &str) -> &'static [(&'static str, &'static str)] {
    match dept {
        "civil-registry" => CIVIL_REGISTRY,
        "tax-office" => TAX_OFFICE,
        "social-welfare" => SOCIAL_WELFARE,
        _ => &[],
    }
}

/// The sample files of one department as owned pairs, ready for [`crate::PolicySet::from_sources`].
pub fn sources(dept: &str) -> Vec<(String, String)> {
    files(dept)
        .iter()
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect()
}
