// Named checks of the Trino JDBC driver against a server that holds the TPC-H tables (nation,
// region, ... with the standard column names n_nationkey, n_name, ...): the real Trino (catalog
// tpch, schema tiny) or SQE's Trino endpoint.
//
//   java -cp trino-jdbc.jar e2e/java/TrinoJdbcCheck.java <jdbc-url> <user> <catalog> <schema> [check ...]
//   e.g. java -cp trino-jdbc.jar e2e/java/TrinoJdbcCheck.java jdbc:trino://127.0.0.1:8080 test tpch tiny
//
// Prints "PASS <name>" or "FAIL <name>: <reason>" for each check (only the named ones when
// names are given) and a last line "summary: N checks passed, M failed"; exits 1 if any check failed, 2 on bad
// arguments or when no connection can be made. Java 17, no dependencies but the driver.
import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;

public class TrinoJdbcCheck {
    interface Check {
        void run() throws Exception;
    }

    static final class CheckFailed extends Exception {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    static String url;
    static String user;
    static String catalog;
    static String schema;
    static Connection conn;

    static void check(boolean ok, String message) throws CheckFailed {
        if (!ok) {
            throw new CheckFailed(message);
        }
    }

    static void equal(Object expected, Object actual, String what) throws CheckFailed {
        if (!Objects.equals(expected, actual)) {
            throw new CheckFailed(what + ": expected <" + expected + "> but got <" + actual + ">"
                    + (actual == null ? "" : " (" + actual.getClass().getName() + ")"));
        }
    }

    static Connection connect() throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        Connection c = DriverManager.getConnection(url, p);
        c.setCatalog(catalog);
        c.setSchema(schema);
        return c;
    }

    /** Column `col` of every row of `rs`, as strings; closes `rs`. */
    static List<String> column(ResultSet rs, String col) throws SQLException {
        List<String> out = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                out.add(rs.getString(col));
            }
        }
        return out;
    }

    /** Runs `sql` and returns its single row (fails unless there is exactly one). */
    static ResultSet one(Statement st, String sql) throws Exception {
        ResultSet rs = st.executeQuery(sql);
        check(rs.next(), "no row from " + sql);
        return rs;
    }

    static ResultSet one(PreparedStatement ps) throws Exception {
        ResultSet rs = ps.executeQuery();
        check(rs.next(), "no row from the prepared statement");
        return rs;
    }

    static void noMoreRows(ResultSet rs) throws Exception {
        check(!rs.next(), "more than one row");
        rs.close();
    }

    static Map<String, Check> checks() {
        Map<String, Check> c = new LinkedHashMap<>();

        // ---- DatabaseMetaData
        c.put("metadata_product", () -> {
            DatabaseMetaData md = conn.getMetaData();
            String name = md.getDatabaseProductName();
            String version = md.getDatabaseProductVersion();
            check(name != null && !name.isEmpty(), "empty getDatabaseProductName");
            check(version != null && !version.isEmpty(), "empty getDatabaseProductVersion");
        });
        c.put("metadata_catalogs", () -> {
            List<String> cats = column(conn.getMetaData().getCatalogs(), "TABLE_CAT");
            check(cats.contains(catalog), "getCatalogs " + cats + " lacks " + catalog);
        });
        c.put("metadata_schemas", () -> {
            DatabaseMetaData md = conn.getMetaData();
            List<String> all = column(md.getSchemas(), "TABLE_SCHEM");
            check(all.contains(schema), "getSchemas() " + all + " lacks " + schema);
            List<String> filtered = column(md.getSchemas(catalog, schema), "TABLE_SCHEM");
            equal(List.of(schema), filtered, "getSchemas(" + catalog + ", " + schema + ")");
        });
        c.put("metadata_tables", () -> {
            DatabaseMetaData md = conn.getMetaData();
            List<String> names = new ArrayList<>();
            try (ResultSet rs = md.getTables(catalog, schema, "%", null)) {
                while (rs.next()) {
                    names.add(rs.getString("TABLE_NAME"));
                    equal(schema, rs.getString("TABLE_SCHEM"), "TABLE_SCHEM of " + rs.getString("TABLE_NAME"));
                }
            }
            check(names.contains("nation") && names.contains("region"), "getTables lists " + names);
            List<String> types = column(md.getTables(catalog, schema, "nation", new String[] {"TABLE"}), "TABLE_TYPE");
            equal(List.of("TABLE"), types, "getTables(nation, [TABLE]) TABLE_TYPE");
            List<String> tableTypes = column(md.getTableTypes(), "TABLE_TYPE");
            check(tableTypes.contains("TABLE"), "getTableTypes " + tableTypes);
        });
        c.put("metadata_columns", () -> {
            List<String> names = new ArrayList<>();
            Map<String, Integer> types = new LinkedHashMap<>();
            try (ResultSet rs = conn.getMetaData().getColumns(catalog, schema, "nation", "%")) {
                while (rs.next()) {
                    String name = rs.getString("COLUMN_NAME");
                    names.add(name);
                    types.put(name, rs.getInt("DATA_TYPE"));
                    equal(names.size(), rs.getInt("ORDINAL_POSITION"), "ORDINAL_POSITION of " + name);
                    check(rs.getString("TYPE_NAME") != null, "TYPE_NAME of " + name + " is null");
                }
            }
            equal(List.of("n_nationkey", "n_name", "n_regionkey", "n_comment"), names, "columns of nation");
            for (String k : List.of("n_nationkey", "n_regionkey")) {
                int t = types.get(k);
                check(t == Types.BIGINT || t == Types.INTEGER, k + " has JDBC type " + t + ", not BIGINT/INTEGER");
            }
            for (String k : List.of("n_name", "n_comment")) {
                int t = types.get(k);
                check(t == Types.VARCHAR || t == Types.CHAR || t == Types.LONGVARCHAR || t == Types.NVARCHAR,
                        k + " has JDBC type " + t + ", not a character type");
            }
        });
        c.put("metadata_type_info", () -> {
            List<String> names = column(conn.getMetaData().getTypeInfo(), "TYPE_NAME");
            for (String t : List.of("bigint", "varchar", "double", "boolean", "date")) {
                check(names.contains(t), "getTypeInfo lacks " + t + ": " + names);
            }
        });
        c.put("metadata_primary_keys", () -> {
            // Neither Trino nor SQE has primary keys; the call must work and return no rows.
            List<String> keys = column(conn.getMetaData().getPrimaryKeys(catalog, schema, "nation"), "COLUMN_NAME");
            check(keys.isEmpty() || keys.contains("n_nationkey"), "getPrimaryKeys returned " + keys);
        });

        // ---- plain statements
        c.put("query_count", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT count(*) FROM nation")) {
                equal(25L, rs.getLong(1), "count(*) of nation");
                noMoreRows(rs);
            }
        });
        c.put("query_rows_in_order", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT r_regionkey, r_name FROM region ORDER BY r_regionkey")) {
                List<String> got = new ArrayList<>();
                while (rs.next()) {
                    got.add(rs.getLong(1) + ":" + rs.getString(2));
                }
                equal(List.of("0:AFRICA", "1:AMERICA", "2:ASIA", "3:EUROPE", "4:MIDDLE EAST"), got, "regions");
            }
        });
        c.put("query_result_metadata", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT n_nationkey, n_name FROM nation WHERE n_nationkey = 0")) {
                ResultSetMetaData md = rs.getMetaData();
                equal(2, md.getColumnCount(), "column count");
                equal("n_nationkey", md.getColumnLabel(1), "label 1");
                equal("n_name", md.getColumnLabel(2), "label 2");
                int t1 = md.getColumnType(1);
                check(t1 == Types.BIGINT || t1 == Types.INTEGER, "n_nationkey JDBC type " + t1);
                equal(Types.VARCHAR, md.getColumnType(2), "n_name JDBC type");
                check(rs.next(), "no row");
                equal("ALGERIA", rs.getString(2), "n_name of 0");
            }
        });
        c.put("query_unnamed_columns", () -> {
            // Trino names unaliased expressions _col0, _col1, ... (even two casts of NULL)
            try (Statement st = conn.createStatement();
                    ResultSet rs = one(st, "SELECT CAST(NULL AS bigint), CAST(NULL AS varchar), 1 + 1")) {
                ResultSetMetaData md = rs.getMetaData();
                equal(List.of("_col0", "_col1", "_col2"),
                        List.of(md.getColumnLabel(1), md.getColumnLabel(2), md.getColumnLabel(3)), "column labels");
                equal(null, rs.getObject(1), "first value");
                equal(2, rs.getInt(3), "1 + 1");
            }
        });
        c.put("statement_execute_select", () -> {
            try (Statement st = conn.createStatement()) {
                check(st.execute("SELECT n_name FROM nation WHERE n_nationkey = 1"), "execute(SELECT) returned false");
                try (ResultSet rs = st.getResultSet()) {
                    check(rs.next(), "no row");
                    equal("ARGENTINA", rs.getString(1), "n_name of 1");
                }
                equal(-1, st.getUpdateCount(), "getUpdateCount after a query");
            }
        });
        c.put("many_rows", () -> {
            // more rows than fit in one protocol page
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT o_orderkey FROM orders")) {
                long n = 0;
                while (rs.next()) {
                    n++;
                }
                try (ResultSet c2 = one(st, "SELECT count(*) FROM orders")) {
                    equal(c2.getLong(1), n, "rows read vs count(*) of orders");
                }
                check(n > 10000, "orders has only " + n + " rows");
            }
        });

        // ---- prepared statements with parameters
        c.put("prepared_bigint", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_name FROM nation WHERE n_nationkey = ?")) {
                ps.setLong(1, 7);
                try (ResultSet rs = one(ps)) {
                    equal("GERMANY", rs.getString(1), "nation 7");
                    noMoreRows(rs);
                }
                ps.setLong(1, 8); // re-executed with another value
                try (ResultSet rs = one(ps)) {
                    equal("INDIA", rs.getString(1), "nation 8");
                }
            }
        });
        c.put("prepared_two_open", () -> {
            // every request then carries one X-Trino-Prepared-Statement header per open statement
            try (PreparedStatement p1 = conn.prepareStatement("SELECT n_name FROM nation WHERE n_nationkey = ?");
                    PreparedStatement p2 = conn.prepareStatement("SELECT r_name FROM region WHERE r_regionkey = ?")) {
                p1.setLong(1, 1);
                p2.setLong(1, 2);
                try (ResultSet rs = one(p1)) {
                    equal("ARGENTINA", rs.getString(1), "nation 1");
                }
                try (ResultSet rs = one(p2)) {
                    equal("ASIA", rs.getString(1), "region 2");
                }
                try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT count(*) FROM region")) {
                    equal(5L, rs.getLong(1), "a plain query while two are prepared");
                }
            }
        });
        c.put("prepared_varchar", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_nationkey FROM nation WHERE n_name = ?")) {
                ps.setString(1, "CANADA");
                try (ResultSet rs = one(ps)) {
                    equal(3L, rs.getLong(1), "key of CANADA");
                    noMoreRows(rs);
                }
                ps.setString(1, "it's nowhere"); // a quote inside the value
                try (ResultSet rs = ps.executeQuery()) {
                    check(!rs.next(), "a row for a name that does not exist");
                }
            }
        });
        c.put("prepared_double", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM nation WHERE n_nationkey < ?")) {
                ps.setDouble(1, 2.5);
                try (ResultSet rs = one(ps)) {
                    equal(3L, rs.getLong(1), "nations with key < 2.5");
                }
            }
        });
        c.put("prepared_date", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT count(*) FROM orders WHERE o_orderdate >= ? AND o_orderdate < ?")) {
                ps.setDate(1, Date.valueOf("1990-01-01"));
                ps.setDate(2, Date.valueOf("2100-01-01"));
                long all;
                try (ResultSet rs = one(ps)) {
                    all = rs.getLong(1);
                }
                try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT count(*) FROM orders")) {
                    equal(rs.getLong(1), all, "orders between 1990 and 2100");
                }
                ps.setDate(1, Date.valueOf("2100-01-01"));
                ps.setDate(2, Date.valueOf("2200-01-01"));
                try (ResultSet rs = one(ps)) {
                    equal(0L, rs.getLong(1), "orders after 2100");
                }
            }
        });
        c.put("prepared_several_params", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT n_name FROM nation WHERE n_regionkey = ? AND n_name LIKE ? ORDER BY n_name")) {
                ps.setLong(1, 1);
                ps.setString(2, "%A%");
                List<String> got = column(ps.executeQuery(), "n_name");
                equal(List.of("ARGENTINA", "BRAZIL", "CANADA", "UNITED STATES"), got, "American nations with an A");
            }
        });
        c.put("prepared_param_roundtrip", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT ? AS p_bigint, ? AS p_varchar, ? AS p_double, ? AS p_date, ? AS p_boolean, ? AS p_decimal")) {
                ps.setLong(1, 9_000_000_000L);
                ps.setString(2, "it's");
                ps.setDouble(3, 1.5);
                ps.setDate(4, Date.valueOf("2024-02-29"));
                ps.setBoolean(5, true);
                ps.setBigDecimal(6, new BigDecimal("12345.67"));
                try (ResultSet rs = one(ps)) {
                    equal(9_000_000_000L, rs.getLong(1), "bigint parameter");
                    equal("it's", rs.getString(2), "varchar parameter");
                    equal(1.5, rs.getDouble(3), "double parameter");
                    equal(Date.valueOf("2024-02-29"), rs.getDate(4), "date parameter");
                    equal(true, rs.getBoolean(5), "boolean parameter");
                    equal(0, new BigDecimal("12345.67").compareTo(rs.getBigDecimal(6)), "decimal parameter " + rs.getBigDecimal(6));
                }
            }
        });

        // ---- every simple type decodes to the right Java value
        c.put("type_bigint", () -> scalar("CAST(9007199254740993 AS bigint)", rs -> {
            equal(9007199254740993L, rs.getLong(1), "getLong");
            equal(9007199254740993L, rs.getObject(1), "getObject");
        }));
        c.put("type_integer", () -> scalar("CAST(-42 AS integer)", rs -> {
            equal(-42, rs.getInt(1), "getInt");
            equal(-42, rs.getObject(1), "getObject");
        }));
        c.put("type_varchar", () -> scalar("'héllo, wörld'", rs -> equal("héllo, wörld", rs.getString(1), "getString")));
        c.put("type_decimal", () -> scalar("CAST(12345678.90 AS decimal(10,2))", rs -> {
            equal(new BigDecimal("12345678.90"), rs.getBigDecimal(1), "getBigDecimal");
            equal(2, rs.getMetaData().getScale(1), "scale");
        }));
        c.put("type_decimal_38", () -> scalar("CAST('12345678901234567890123456789012345678' AS decimal(38,0))",
                rs -> equal(new BigDecimal("12345678901234567890123456789012345678"), rs.getBigDecimal(1), "getBigDecimal")));
        c.put("type_double", () -> scalar("CAST(2.25 AS double)", rs -> {
            equal(2.25, rs.getDouble(1), "getDouble");
            equal(Types.DOUBLE, rs.getMetaData().getColumnType(1), "JDBC type");
        }));
        c.put("type_double_nan_infinity", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = one(st, "SELECT CAST('NaN' AS double), CAST('Infinity' AS double), CAST('-Infinity' AS double)")) {
                check(Double.isNaN(rs.getDouble(1)), "NaN came back as " + rs.getDouble(1));
                equal(Double.POSITIVE_INFINITY, rs.getDouble(2), "Infinity");
                equal(Double.NEGATIVE_INFINITY, rs.getDouble(3), "-Infinity");
            }
        });
        c.put("type_boolean", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT true, false")) {
                equal(true, rs.getBoolean(1), "true");
                equal(false, rs.getBoolean(2), "false");
                equal(Types.BOOLEAN, rs.getMetaData().getColumnType(1), "JDBC type");
            }
        });
        c.put("type_date", () -> scalar("DATE '2024-02-29'", rs -> {
            equal(Date.valueOf("2024-02-29"), rs.getDate(1), "getDate");
            equal(Types.DATE, rs.getMetaData().getColumnType(1), "JDBC type");
        }));
        c.put("type_timestamp", () -> scalar("TIMESTAMP '2024-02-29 12:34:56.789'", rs -> {
            equal(Timestamp.valueOf("2024-02-29 12:34:56.789"), rs.getTimestamp(1), "getTimestamp");
            equal(Types.TIMESTAMP, rs.getMetaData().getColumnType(1), "JDBC type");
        }));
        c.put("type_timestamp_micros", () -> scalar("CAST(TIMESTAMP '2024-02-29 12:34:56.789123' AS timestamp(6))",
                rs -> equal(Timestamp.valueOf("2024-02-29 12:34:56.789123"), rs.getTimestamp(1), "getTimestamp")));
        c.put("type_varbinary", () -> scalar("X'CAFEBABE00'", rs -> {
            byte[] got = rs.getBytes(1);
            check(Arrays.equals(new byte[] {(byte) 0xCA, (byte) 0xFE, (byte) 0xBA, (byte) 0xBE, 0}, got),
                    "getBytes returned " + Arrays.toString(got));
        }));
        c.put("type_array", () -> scalar("ARRAY[1, 2, 3]", rs -> {
            Array a = rs.getArray(1);
            check(a != null, "getArray returned null");
            Object[] values = (Object[]) a.getArray();
            equal(3, values.length, "array length");
            for (int i = 0; i < 3; i++) {
                equal(i + 1L, ((Number) values[i]).longValue(), "element " + i);
            }
        }));
        c.put("type_null", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT CAST(NULL AS bigint) AS a, CAST(NULL AS varchar) AS b")) {
                equal(0L, rs.getLong(1), "getLong of NULL");
                check(rs.wasNull(), "wasNull after a NULL bigint");
                equal(null, rs.getString(2), "getString of NULL");
                check(rs.wasNull(), "wasNull after a NULL varchar");
            }
        });

        // ---- errors
        c.put("error_missing_table", () -> {
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM no_such_table_e2e").close();
                throw new CheckFailed("a query of a missing table succeeded");
            } catch (SQLException e) {
                check(String.valueOf(e.getMessage()).toLowerCase().contains("no_such_table_e2e"),
                        "the error does not name the table: " + e.getMessage());
            }
        });
        c.put("error_then_connection_still_works", () -> {
            try (Statement st = conn.createStatement()) {
                try {
                    st.executeQuery("SELECT no_such_column_e2e FROM nation").close();
                    throw new CheckFailed("a query of a missing column succeeded");
                } catch (SQLException e) {
                    check(String.valueOf(e.getMessage()).toLowerCase().contains("no_such_column_e2e"),
                            "the error does not name the column: " + e.getMessage());
                }
                try (ResultSet rs = one(st, "SELECT count(*) FROM region")) {
                    equal(5L, rs.getLong(1), "count(*) of region after an error");
                }
            }
        });
        return c;
    }

    interface RowCheck {
        void check(ResultSet rs) throws Exception;
    }

    static void scalar(String expr, RowCheck f) throws Exception {
        try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT " + expr)) {
            f.check(rs);
            noMoreRows(rs);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: TrinoJdbcCheck <jdbc-url> <user> <catalog> <schema> [check ...]");
            System.exit(2);
        }
        url = args[0];
        user = args[1];
        catalog = args[2];
        schema = args[3];
        List<String> only = Arrays.asList(args).subList(4, args.length);
        try {
            conn = connect();
        } catch (SQLException e) {
            System.out.println("FAIL connect: " + e);
            System.exit(2);
        }
        Map<String, Check> all = checks();
        for (String name : only) {
            if (!all.containsKey(name)) {
                System.err.println("no check named " + name + "; checks: " + all.keySet());
                System.exit(2);
            }
        }
        int passed = 0;
        int failed = 0;
        for (Map.Entry<String, Check> e : all.entrySet()) {
            if (!only.isEmpty() && !only.contains(e.getKey())) {
                continue;
            }
            try {
                e.getValue().run();
                System.out.println("PASS " + e.getKey());
                passed++;
            } catch (CheckFailed f) {
                System.out.println("FAIL " + e.getKey() + ": " + f.getMessage());
                failed++;
            } catch (Throwable t) {
                System.out.println("FAIL " + e.getKey() + ": " + oneLine(t));
                failed++;
            }
            System.out.flush();
        }
        try {
            conn.close();
        } catch (SQLException ignored) {
            // closing is not a check
        }
        System.out.println("summary: " + passed + " checks passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    static String oneLine(Throwable t) {
        StringBuilder sb = new StringBuilder(t.toString());
        for (Throwable c = t.getCause(); c != null && c != t; c = c.getCause()) {
            sb.append(" / caused by ").append(c);
            if (c.getCause() == c) {
                break;
            }
        }
        return sb.toString().replace('\n', ' ');
    }
}
