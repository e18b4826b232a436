//! The Aix-Marseille-Provence territory: where the generated sensors stand.
//!
//! Sensors cluster around the metropolis' towns, weighted roughly by
//! population, and every point is kept inside the metropolis' bounding box so
//! that geo queries added later have a known extent to aim at.

use crate::seeded_rng::SeededRng;

/// Bounding box of the generated points (WGS84 degrees).
pub const LON_MIN: f64 = 5.0;
pub const LON_MAX: f64 = 5.8;
pub const LAT_MIN: f64 = 43.15;
pub const LAT_MAX: f64 = 43.65;

pub struct Town {
    pub name: &'static str,
    pub lon: f64,
    pub lat: f64,
    /// Relative share of the sensors placed around this town.
    pub weight: u32,
}

#[rustfmt::skip]
pub const TOWNS: &[Town] = &[
    Town { name: "Marseille", lon: 5.3698, lat: 43.2965, weight: 40 },
    Town { name: "Aix-en-Provence", lon: 5.4474, lat: 43.5297, weight: 12 },
    Town { name: "Aubagne", lon: 5.5706, lat: 43.2927, weight: 5 },
    Town { name: "Martigues", lon: 5.0547, lat: 43.4053, weight: 5 },
    Town { name: "La Ciotat", lon: 5.6047, lat: 43.1748, weight: 4 },
    Town { name: "Vitrolles", lon: 5.2486, lat: 43.4600, weight: 4 },
    Town { name: "Marignane", lon: 5.2142, lat: 43.4159, weight: 4 },
    Town { name: "Salon-de-Provence", lon: 5.0975, lat: 43.6403, weight: 4 },
    Town { name: "Gardanne", lon: 5.4692, lat: 43.4547, weight: 3 },
    Town { name: "Allauch", lon: 5.4822, lat: 43.3364, weight: 3 },
    Town { name: "Les Pennes-Mirabeau", lon: 5.3097, lat: 43.4103, weight: 3 },
    Town { name: "Cassis", lon: 5.5383, lat: 43.2147, weight: 2 },
    Town { name: "Berre-l'Etang", lon: 5.1700, lat: 43.4786, weight: 2 },
    Town { name: "Gemenos", lon: 5.6286, lat: 43.2961, weight: 2 },
    Town { name: "Trets", lon: 5.6836, lat: 43.4475, weight: 2 },
    Town { name: "Carry-le-Rouet", lon: 5.1528, lat: 43.3317, weight: 1 },
];

/// A sensor's place: the town it belongs to and its coordinates.
pub struct Place {
    pub town: &'static str,
    pub lon: f64,
    pub lat: f64,
}

/// Picks a town by weight and scatters the point around its centre
/// (about 2 km standard deviation), clamped to the bounding box.
pub fn place_sensor(rng: &mut SeededRng) -> Place {
    let total: u32 = TOWNS.iter().map(|town| town.weight).sum();
    let mut ticket = rng.below(u64::from(total)) as u32;
    let town = TOWNS
        .iter()
        .find(|town| {
            if ticket < town.weight {
                true
            } else {
                ticket -= town.weight;
                false
            }
        })
        .unwrap_or(&TOWNS[0]);
    let lon = (town.lon + 0.025 * rng.gaussian()).clamp(LON_MIN, LON_MAX);
    let lat = (town.lat + 0.018 * rng.gaussian()).clamp(LAT_MIN, LAT_MAX);
    // Six decimals (about 10 cm) keep the JSON short and the output stable.
    Place {
        town: town.name,
        lon: (lon * 1e6).round() / 1e6,
        lat: (lat * 1e6).round() / 1e6,
    }
}
