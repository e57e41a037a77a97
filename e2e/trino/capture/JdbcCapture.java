// Drives the Trino JDBC driver through the actions recorded in e2e/trino/client-traffic.md.
// Before each action it GETs <proxy>/__label__/<name> so that logging_proxy.py tags the
// requests that follow; it prints what each call returned (column labels, first rows).
//
//   java -cp trino-jdbc.jar e2e/trino/capture/JdbcCapture.java http://127.0.0.1:PROXYPORT
import java.math.BigDecimal;
import java.net.HttpURLConnection;
import java.net.Proxy;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.sql.*;
import java.util.Properties;

public class JdbcCapture {
    static String proxy;

    static void label(String name) throws Exception {
        var url = URI.create(proxy + "/__label__/" + URLEncoder.encode(name, StandardCharsets.UTF_8).replace("+", "%20")).toURL();
        var c = (HttpURLConnection) url.openConnection(Proxy.NO_PROXY);
        c.getResponseCode();
        c.disconnect();
        System.out.println("=== " + name);
    }

    static void dump(ResultSet rs, int maxRows) throws SQLException {
        var md = rs.getMetaData();
        var sb = new StringBuilder("columns:");
        for (int i = 1; i <= md.getColumnCount(); i++) {
            sb.append(' ').append(md.getColumnLabel(i)).append('(').append(md.getColumnTypeName(i)).append(')');
        }
        System.out.println(sb);
        int n = 0;
        while (rs.next()) {
            if (n < maxRows) {
                var row = new StringBuilder("row:");
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    row.append(i == 1 ? " " : " | ").append(rs.getObject(i));
                }
                System.out.println(row);
            }
            n++;
        }
        System.out.println("rows: " + n);
        rs.close();
    }

    static Connection connect(String extra) throws SQLException {
        var p = new Properties();
        p.setProperty("user", "test");
        p.setProperty("source", "jdbc-capture");
        String hostPort = proxy.replaceFirst("^http://", "");
        return DriverManager.getConnection("jdbc:trino://" + hostPort + "/tpch/tiny" + extra, p);
    }

    public static void main(String[] args) throws Exception {
        proxy = args[0];
        try (Connection conn = connect("")) {
            DatabaseMetaData md = conn.getMetaData();
            label("jdbc getDatabaseProductVersion");
            System.out.println("product: " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion()
                    + " driver " + md.getDriverVersion());
            label("jdbc getCatalogs");
            dump(md.getCatalogs(), 10);
            label("jdbc getSchemas()");
            dump(md.getSchemas(), 20);
            label("jdbc getSchemas(tpch, ti%)");
            dump(md.getSchemas("tpch", "ti%"), 20);
            label("jdbc getTables(null, tiny, %, null)");
            dump(md.getTables(null, "tiny", "%", null), 20);
            label("jdbc getTables(tpch, tiny, nation, [TABLE])");
            dump(md.getTables("tpch", "tiny", "nation", new String[] {"TABLE"}), 20);
            label("jdbc getColumns(tpch, tiny, nation, %)");
            dump(md.getColumns("tpch", "tiny", "nation", "%"), 10);
            label("jdbc getColumns(null, tiny, nation, %)");
            dump(md.getColumns(null, "tiny", "nation", "%"), 1);
            label("jdbc getTypeInfo");
            dump(md.getTypeInfo(), 100);
            label("jdbc getTableTypes");
            dump(md.getTableTypes(), 10);
            label("jdbc getPrimaryKeys(tpch, tiny, nation)");
            dump(md.getPrimaryKeys("tpch", "tiny", "nation"), 10);
            label("jdbc getImportedKeys(tpch, tiny, nation)");
            dump(md.getImportedKeys("tpch", "tiny", "nation"), 10);
            label("jdbc getIndexInfo(tpch, tiny, nation)");
            try {
                dump(md.getIndexInfo("tpch", "tiny", "nation", false, true), 10);
            } catch (SQLException e) {
                System.out.println("error: " + e);
            }
            label("jdbc getFunctions(null, null, abs)");
            try {
                dump(md.getFunctions(null, null, "abs"), 3);
            } catch (SQLException e) {
                System.out.println("error: " + e);
            }

            label("jdbc Statement.executeQuery");
            try (Statement st = conn.createStatement()) {
                dump(st.executeQuery("SELECT * FROM region ORDER BY r_regionkey"), 10);
            }
            label("jdbc Statement.execute(select) + getUpdateCount");
            try (Statement st = conn.createStatement()) {
                boolean isRs = st.execute("SELECT count(*) FROM nation");
                System.out.println("execute returned " + isRs);
                dump(st.getResultSet(), 1);
                System.out.println("getUpdateCount " + st.getUpdateCount() + " getMoreResults " + st.getMoreResults());
            }

            preparedTypes(conn, "jdbc PreparedStatement (default, explicitPrepare=true)");
            label("jdbc PreparedStatement WHERE n_nationkey = ? (default)");
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_name FROM nation WHERE n_nationkey = ?")) {
                ps.setLong(1, 7);
                dump(ps.executeQuery(), 3);
                ps.setLong(1, 8);
                dump(ps.executeQuery(), 3);
            }
            label("jdbc two PreparedStatements open at once");
            try (PreparedStatement p1 = conn.prepareStatement("SELECT n_name FROM nation WHERE n_nationkey = ?");
                    PreparedStatement p2 = conn.prepareStatement("SELECT r_name FROM region WHERE r_regionkey = ?")) {
                p1.setLong(1, 1);
                dump(p1.executeQuery(), 1);
                p2.setLong(1, 2);
                dump(p2.executeQuery(), 1);
                try (Statement st = conn.createStatement()) {
                    dump(st.executeQuery("SELECT 1"), 1);
                }
            }
            label("jdbc PreparedStatement.getMetaData (before execute)");
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_nationkey, n_name FROM nation WHERE n_regionkey = ?")) {
                var rmd = ps.getMetaData();
                System.out.println("metadata columns: " + (rmd == null ? "null" : rmd.getColumnCount()));
                var pmd = ps.getParameterMetaData();
                System.out.println("parameter count: " + pmd.getParameterCount());
            } catch (SQLException e) {
                System.out.println("error: " + e);
            }
            label("jdbc error: missing table");
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM no_such_table");
            } catch (SQLException e) {
                System.out.println("SQLException: " + e.getMessage() + " | SQLState " + e.getSQLState()
                        + " | errorCode " + e.getErrorCode() + " | cause " + e.getCause());
            }
        }
        try (Connection conn = connect("")) {
            label("jdbc DDL/DML on memory: executeUpdate, execute, prepared INSERT");
            try (Statement st = conn.createStatement()) {
                System.out.println("executeUpdate(CREATE SCHEMA) = " + st.executeUpdate("CREATE SCHEMA memory.jdbccap"));
                System.out.println("executeUpdate(CREATE TABLE) = "
                        + st.executeUpdate("CREATE TABLE memory.jdbccap.t (id bigint, name varchar)"));
                System.out.println("executeUpdate(INSERT 3 rows) = "
                        + st.executeUpdate("INSERT INTO memory.jdbccap.t VALUES (1, 'a'), (2, 'b'), (3, 'c')"));
                boolean isRs = st.execute("INSERT INTO memory.jdbccap.t VALUES (4, 'd')");
                System.out.println("execute(INSERT 1 row) = " + isRs + ", getUpdateCount = " + st.getUpdateCount()
                        + ", getLargeUpdateCount = " + st.getLargeUpdateCount());
            }
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO memory.jdbccap.t VALUES (?, ?)")) {
                ps.setLong(1, 5);
                ps.setString(2, "e");
                System.out.println("prepared executeUpdate(INSERT) = " + ps.executeUpdate());
                ps.setLong(1, 6);
                ps.setString(2, "f");
                ps.addBatch();
                ps.setLong(1, 7);
                ps.setString(2, "g");
                ps.addBatch();
                System.out.println("prepared executeBatch = " + java.util.Arrays.toString(ps.executeBatch()));
            }
            try (Statement st = conn.createStatement()) {
                dump(st.executeQuery("SELECT count(*) FROM memory.jdbccap.t"), 1);
                System.out.println("executeUpdate(DROP TABLE) = " + st.executeUpdate("DROP TABLE memory.jdbccap.t"));
                System.out.println("executeUpdate(DROP SCHEMA) = " + st.executeUpdate("DROP SCHEMA memory.jdbccap"));
            }
        }
        try (Connection conn = connect("?explicitPrepare=false")) {
            preparedTypes(conn, "jdbc PreparedStatement (explicitPrepare=false)");
        }
    }

    static void preparedTypes(Connection conn, String name) throws Exception {
        label(name);
        String sql = "SELECT ? AS p_int, ? AS p_bigint, ? AS p_varchar, ? AS p_double, ? AS p_decimal, "
                + "? AS p_date, ? AS p_timestamp, ? AS p_boolean";
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            ps.setInt(1, 42);
            ps.setLong(2, 9_000_000_000L);
            ps.setString(3, "it's");
            ps.setDouble(4, 1.5);
            ps.setBigDecimal(5, new BigDecimal("12345.67"));
            ps.setDate(6, Date.valueOf("2024-02-29"));
            ps.setTimestamp(7, Timestamp.valueOf("2024-02-29 12:34:56.789"));
            ps.setBoolean(8, true);
            dump(ps.executeQuery(), 1);
            // run it a second time: is the statement prepared again?
            ps.setInt(1, 43);
            dump(ps.executeQuery(), 1);
        }
    }
}
