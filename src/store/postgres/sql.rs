//! A statement built piece by piece with its parameters bound as `$n` (never spliced).

use tokio_postgres::types::ToSql;

pub type Param = Box<dyn ToSql + Sync + Send>;

#[derive(Default)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    /// Binds a value; returns its placeholder to splice into the text.
    pub fn bind(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// The parameters as tokio-postgres wants them.
    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}
