"""JDBC URLs (#19 finding 10): credentials in any property the PostgreSQL, MariaDB and MySQL
drivers read are refused at load time (file:line) and again when the URL is used, and never
echoed."""

from __future__ import annotations

import pytest

from datahub_assets.execute import jdbc
from datahub_assets.execute.jdbc import JdbcError
from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import DatabaseSource
from datahub_assets.spec.validate import jdbc_url_problem, redact_jdbc_url
from tests.unit.spec_helpers import find_error, write

F = "crm/raw/p.xml"


def _load(tmp_path, url: str):
    """Load a pipeline whose line-3 source has jdbcUrl `url` (raises SpecErrors)."""
    xml_url = url.replace("&", "&amp;")
    write(
        tmp_path,
        {
            F: f"""<pipeline id="p" layer="raw">
  <sources>
    <database id="d" jdbcUrl="{xml_url}"><table name="t"/></database>
  </sources>
  <targets><table table="t" mode="append"/></targets>
</pipeline>
"""
        },
    )
    return load_project(tmp_path)


SECRET_VALUE = "Hunter2-xyz"

CREDENTIAL_URLS = [
    # PostgreSQL (pgjdbc): the client key's password
    (f"jdbc:postgresql://db/x?ssl=true&sslpassword={SECRET_VALUE}", "sslpassword="),
    # MySQL Connector/J multi-factor passwords
    (f"jdbc:mysql://db/x?password1={SECRET_VALUE}", "password1="),
    (f"jdbc:mysql://db/x?user=bob&password2={SECRET_VALUE}", "user=, password2="),
    (f"jdbc:mysql://db/x?password3={SECRET_VALUE}", "password3="),
    # MariaDB Connector/J key and trust stores
    (f"jdbc:mariadb://db/x?keyStorePassword={SECRET_VALUE}", "keyStorePassword="),
    (f"jdbc:mariadb://db/x?trustStorePassword={SECRET_VALUE}", "trustStorePassword="),
    (f"jdbc:mariadb://db/x?keyPassword={SECRET_VALUE}", "keyPassword="),
    (f"jdbc:mysql://db/x?clientCertificateKeyStorePassword={SECRET_VALUE}", "clientCert"),
    # MySQL-style host specs, another case, a percent-encoded key, `;` separators
    (f"jdbc:mysql://address=(host=db)(user=bob)(password={SECRET_VALUE})/x", "password="),
    (f"jdbc:mysql://(host=db,port=3306,password={SECRET_VALUE})/x", "password="),
    (f"jdbc:postgresql://db/x?PassWord={SECRET_VALUE}", "PassWord="),
    (f"jdbc:postgresql://db/x?pass%77ord={SECRET_VALUE}", "password="),
    (f"jdbc:postgresql://db/x;password={SECRET_VALUE}", "password="),
    (f"jdbc:postgresql://bob:{SECRET_VALUE}@db/x", "user:password@"),
]


@pytest.mark.parametrize(("url", "named"), CREDENTIAL_URLS)
def test_credential_properties_are_refused_and_never_shown(url, named):
    problem = jdbc_url_problem(url)
    assert problem is not None
    assert problem.startswith("carries credentials (")
    assert named in problem
    assert SECRET_VALUE not in problem
    assert SECRET_VALUE not in redact_jdbc_url(url)
    with pytest.raises(JdbcError) as err:  # used anyway (a URL the loader never saw)
        jdbc.endpoint(url, None)
    assert "carries credentials" in str(err.value)
    assert SECRET_VALUE not in str(err.value)


@pytest.mark.parametrize(("url", "named"), CREDENTIAL_URLS[:9])
def test_the_loader_refuses_them_with_file_and_line(tmp_path, url, named):
    with pytest.raises(SpecErrors) as errors:
        _load(tmp_path, url)
    err = find_error(errors.value.errors, F, 3, "carries credentials", named)
    assert SECRET_VALUE not in err.message


@pytest.mark.parametrize(
    "url",
    [
        # names that only look like credentials: an encoding, a class, a server option
        "jdbc:mariadb://db/x?passwordCharacterEncoding=utf8",
        "jdbc:postgresql://db/x?sslpasswordcallback=org.example.Cb",
        "jdbc:postgresql://db/x?options=-c%20password_encryption=scram-sha-256",
        "jdbc:postgresql://db/x?ApplicationName=user&sslmode=verify-full",
    ],
)
def test_look_alikes_load(tmp_path, url):
    assert jdbc_url_problem(url) is None
    (spec,) = _load(tmp_path, url).pipelines
    (source,) = spec.pipeline.sources
    assert isinstance(source, DatabaseSource)
    assert source.jdbc_url == url
