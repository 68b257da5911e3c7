-- Store schema of the emergency-management console (DuckDB).
-- Analysts query these tables directly: keep names and columns stable, add rather than rename.
-- Conventions: lon/lat are WGS84 degrees; times are TIMESTAMPTZ (UTC in storage);
-- risk_level and warning/incident level are one of 'red', 'orange', 'yellow', 'blue'.

-- ---------------------------------------------------------------- geography
CREATE TABLE IF NOT EXISTS cities (
    city_code     VARCHAR PRIMARY KEY,   -- 6-digit GB/T 2260 code, e.g. '370100'
    name          VARCHAR NOT NULL,      -- 济南市
    name_en       VARCHAR,
    lon           DOUBLE,                -- centroid
    lat           DOUBLE
);

CREATE TABLE IF NOT EXISTS counties (
    county_code   VARCHAR PRIMARY KEY,   -- 6-digit code, e.g. '370102'
    name          VARCHAR NOT NULL,      -- 历下区
    city          VARCHAR NOT NULL,      -- 济南市
    city_code     VARCHAR NOT NULL,
    lon           DOUBLE,                -- representative point inside the county
    lat           DOUBLE,
    area_km2      DOUBLE,
    population    INTEGER
);

-- Outlines, GeoJSON (Polygon or MultiPolygon, WGS84) as text; level is 'city' or 'county'.
CREATE TABLE IF NOT EXISTS boundaries (
    code          VARCHAR NOT NULL,
    level         VARCHAR NOT NULL,
    name          VARCHAR NOT NULL,
    parent_code   VARCHAR,
    geojson       VARCHAR NOT NULL,
    PRIMARY KEY (code, level)
);

-- ---------------------------------------------------------------- safety production
CREATE TABLE IF NOT EXISTS enterprises (
    enterprise_id INTEGER PRIMARY KEY,
    name          VARCHAR NOT NULL,
    industry      VARCHAR NOT NULL,      -- key of the industry list (hazchem, mining, ...)
    size          VARCHAR NOT NULL,      -- large / medium / small / micro
    county_code   VARCHAR NOT NULL,
    address       VARCHAR,
    contact_name  VARCHAR,
    contact_phone VARCHAR,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    risk_level    VARCHAR NOT NULL,      -- red / orange / yellow / blue (the enterprise's grade)
    is_major_hazard BOOLEAN DEFAULT FALSE
);

CREATE TABLE IF NOT EXISTS risk_points (
    point_id      INTEGER PRIMARY KEY,
    enterprise_id INTEGER NOT NULL,
    county_code   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,      -- equipment, process, place, operation, ...
    risk_level    VARCHAR NOT NULL,      -- red / orange / yellow / blue
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL
);

-- 隐患: hazards found in inspections, to be rectified by a deadline.
CREATE TABLE IF NOT EXISTS hazards (
    hazard_id     INTEGER PRIMARY KEY,
    enterprise_id INTEGER NOT NULL,
    point_id      INTEGER,
    description   VARCHAR NOT NULL,
    severity      VARCHAR NOT NULL,      -- general / major
    found_on      DATE NOT NULL,
    deadline      DATE NOT NULL,
    status        VARCHAR NOT NULL,      -- open / rectifying / closed
    closed_on     DATE
);

-- 重大危险源: major hazard installations at chemical enterprises.
CREATE TABLE IF NOT EXISTS installations (
    installation_id INTEGER PRIMARY KEY,
    enterprise_id INTEGER NOT NULL,
    name          VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,      -- tank_farm / reactor / warehouse / pipeline
    hazard_grade  INTEGER NOT NULL,      -- 1 (highest) .. 4
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL
);

-- ---------------------------------------------------------------- natural hazards monitoring
-- Rain gauges, river stations, reservoirs and weather stations.
CREATE TABLE IF NOT EXISTS stations (
    station_id    VARCHAR PRIMARY KEY,
    kind          VARCHAR NOT NULL,      -- rain / river / reservoir / weather
    name          VARCHAR NOT NULL,
    county_code   VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    river         VARCHAR,               -- river stations
    warning_level DOUBLE,                -- river: 警戒水位 (m)
    guarantee_level DOUBLE,              -- river: 保证水位 (m)
    scale         VARCHAR,               -- reservoir: large / medium
    flood_limit_level DOUBLE,            -- reservoir: 汛限水位 (m)
    normal_level  DOUBLE,                -- reservoir: 正常蓄水位 (m)
    dam_crest_level DOUBLE,              -- reservoir: 坝顶高程 (m)
    capacity_mcm  DOUBLE                 -- reservoir: total capacity, million m³
);

-- Every sensor of the registry: installation sensors and station sensors alike.
-- Thresholds are NULL where they do not apply (e.g. no low limits for gas).
CREATE TABLE IF NOT EXISTS sensors (
    sensor_id     VARCHAR PRIMARY KEY,
    kind          VARCHAR NOT NULL,      -- tank_level / temperature / pressure / toxic_gas / flammable_gas
                                         -- / rain / river_level / reservoir_level / air_temperature / wind_speed / humidity
    unit          VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    county_code   VARCHAR NOT NULL,
    installation_id INTEGER,             -- set for installation sensors
    enterprise_id INTEGER,               -- set for installation sensors
    station_id    VARCHAR,               -- set for station sensors
    period_s      DOUBLE NOT NULL,       -- nominal reporting period
    normal        DOUBLE,                -- typical value
    lo_lo         DOUBLE,
    lo            DOUBLE,
    hi            DOUBLE,
    hi_hi         DOUBLE,
    deadband      DOUBLE                 -- hysteresis for clearing an alarm
);

CREATE TABLE IF NOT EXISTS landslide_points (
    point_id      INTEGER PRIMARY KEY,
    name          VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,      -- landslide / debris_flow / collapse / subsidence
    county_code   VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    scale         VARCHAR NOT NULL,      -- small / medium / large
    threatened_people INTEGER NOT NULL,
    rain_threshold_mm DOUBLE NOT NULL    -- 24 h rainfall above which the point's risk rises
);

-- ---------------------------------------------------------------- resources
CREATE TABLE IF NOT EXISTS warehouses (
    warehouse_id  INTEGER PRIMARY KEY,
    name          VARCHAR NOT NULL,
    level         VARCHAR NOT NULL,      -- province / city / county
    owner_unit    VARCHAR NOT NULL,
    county_code   VARCHAR NOT NULL,
    address       VARCHAR,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    contact_name  VARCHAR,
    contact_phone VARCHAR
);

CREATE TABLE IF NOT EXISTS material_kinds (
    kind_id       INTEGER PRIMARY KEY,
    name          VARCHAR NOT NULL,
    category      VARCHAR NOT NULL,      -- flood / fire / rescue / living / medical / hazchem / power / communication
    unit          VARCHAR NOT NULL,      -- 件, 顶, 台, 吨, ...
    countable     BOOLEAN NOT NULL       -- FALSE for bulk goods measured in tonnes / m³
);

-- Current stock. initial_quantity is the stock when the store was built; every change after
-- that is a row of stock_ledger, so quantity = initial_quantity + SUM(ledger.delta).
CREATE TABLE IF NOT EXISTS stock (
    warehouse_id  INTEGER NOT NULL,
    kind_id       INTEGER NOT NULL,
    quantity      DOUBLE NOT NULL CHECK (quantity >= 0),
    initial_quantity DOUBLE NOT NULL,
    min_quantity  DOUBLE NOT NULL,
    PRIMARY KEY (warehouse_id, kind_id)
);

CREATE TABLE IF NOT EXISTS rescue_teams (
    team_id       INTEGER PRIMARY KEY,
    name          VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,      -- fire / mine / hazchem / flood / forest_fire / medical / power / volunteer
    county_code   VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    members       INTEGER NOT NULL,
    leader        VARCHAR,
    phone         VARCHAR,
    equipment     VARCHAR
);

CREATE TABLE IF NOT EXISTS shelters (
    shelter_id    INTEGER PRIMARY KEY,
    name          VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,      -- school / park / stadium / square / community
    county_code   VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    capacity      INTEGER NOT NULL,
    area_m2       DOUBLE
);

CREATE TABLE IF NOT EXISTS expert_tags (
    tag           VARCHAR PRIMARY KEY,
    type          VARCHAR NOT NULL       -- safety / natural / rescue / general
);

CREATE TABLE IF NOT EXISTS experts (
    expert_id     INTEGER PRIMARY KEY,
    name          VARCHAR NOT NULL,
    type          VARCHAR NOT NULL,      -- safety / natural / rescue / general
    title         VARCHAR,               -- 高级工程师, 教授, ...
    employer      VARCHAR,
    employer_enterprise_id INTEGER,      -- set when employed by an enterprise of the registry
    county_code   VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    phone         VARCHAR,
    email         VARCHAR,
    available     BOOLEAN NOT NULL,
    rating        DOUBLE                 -- mean of past ratings, 1..5
);

CREATE TABLE IF NOT EXISTS expert_tag_links (
    expert_id     INTEGER NOT NULL,
    tag           VARCHAR NOT NULL,
    PRIMARY KEY (expert_id, tag)
);

-- ---------------------------------------------------------------- live feeds
-- feed is the feed URL as given on the command line; (feed, seq) is the idempotency key,
-- unique across every message table below.
CREATE TABLE IF NOT EXISTS readings (
    feed          VARCHAR NOT NULL,
    seq           BIGINT NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    sensor_id     VARCHAR NOT NULL,
    value         DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS hotspots (
    feed          VARCHAR NOT NULL,
    seq           BIGINT NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    hotspot_id    VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    confidence    DOUBLE NOT NULL,
    satellite     VARCHAR NOT NULL,
    extra         VARCHAR                -- unknown extra fields, JSON
);

CREATE TABLE IF NOT EXISTS quakes (
    feed          VARCHAR NOT NULL,
    seq           BIGINT NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    quake_id      VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    depth_km      DOUBLE NOT NULL,
    magnitude     DOUBLE NOT NULL,
    extra         VARCHAR
);

-- Warnings, append-only: every Alert / Update / Cancel is a row (its history); the current
-- state of a warning is its latest version. source is 'feed' or 'officer'.
CREATE TABLE IF NOT EXISTS warnings (
    warning_id    VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    msg_type      VARCHAR NOT NULL,      -- Alert / Update / Cancel
    event         VARCHAR NOT NULL,
    level         VARCHAR NOT NULL,      -- blue / yellow / orange / red
    headline      VARCHAR NOT NULL,
    description   VARCHAR,
    area_codes    VARCHAR[],             -- county codes
    area_geojson  VARCHAR,               -- GeoJSON Polygon when the area was drawn
    effective     TIMESTAMPTZ NOT NULL,
    expires       TIMESTAMPTZ NOT NULL,
    source        VARCHAR NOT NULL,
    sender        VARCHAR NOT NULL,      -- officer user name or feed URL
    created_at    TIMESTAMPTZ NOT NULL,
    feed          VARCHAR,
    seq           BIGINT,
    extra         VARCHAR,
    PRIMARY KEY (warning_id, version)
);

-- Incidents, append-only like warnings: the current state is the latest row per incident_id.
CREATE TABLE IF NOT EXISTS incidents (
    feed          VARCHAR NOT NULL,
    seq           BIGINT NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    incident_id   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    title         VARCHAR NOT NULL,
    level         VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,      -- open / closed
    county_code   VARCHAR,
    extra         VARCHAR
);

CREATE TABLE IF NOT EXISTS quarantine (
    feed          VARCHAR NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL,
    reason        VARCHAR NOT NULL,
    raw           VARCHAR NOT NULL       -- cut at 64 KiB
);

-- ---------------------------------------------------------------- alarms
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id      BIGINT PRIMARY KEY,
    sensor_id     VARCHAR NOT NULL,
    installation_id INTEGER,
    enterprise_id INTEGER,
    county_code   VARCHAR,
    kind          VARCHAR NOT NULL,      -- hi / hi_hi / lo / lo_lo / stale
    level         VARCHAR NOT NULL,      -- red / orange / yellow
    raised_at     TIMESTAMPTZ NOT NULL,
    trigger_value DOUBLE,
    peak_value    DOUBLE,
    peak_at       TIMESTAMPTZ,
    cleared_at    TIMESTAMPTZ,           -- when the value came back within limits (held)
    state         VARCHAR NOT NULL,      -- raised / acknowledged / disposed / closed
    acked_by      VARCHAR,
    acked_at      TIMESTAMPTZ,
    disposed_by   VARCHAR,
    disposed_at   TIMESTAMPTZ,
    disposal_note VARCHAR,
    closed_by     VARCHAR,
    closed_at     TIMESTAMPTZ,
    escalated_at  TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS alarm_actions (
    alarm_id      BIGINT NOT NULL,
    action        VARCHAR NOT NULL,      -- raise / upgrade (hi -> hi_hi) / acknowledge / dispose / close / clear / escalate
    actor         VARCHAR NOT NULL,
    acted_at      TIMESTAMPTZ NOT NULL,
    note          VARCHAR
);

-- ---------------------------------------------------------------- inventory (experts and materials; owner: inventory)
CREATE SEQUENCE IF NOT EXISTS inventory_ids START 1;

-- A task experts are drawn for (an incident, an inspection, an assessment).
CREATE TABLE IF NOT EXISTS expert_tasks (
    task_id       BIGINT PRIMARY KEY,
    title         VARCHAR NOT NULL,
    enterprise_id INTEGER,               -- the enterprise involved (its experts are excluded)
    lon           DOUBLE,
    lat           DOUBLE,
    created_by    VARCHAR NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- 专家抽取: every draw (and every redraw replacing a declining expert) with its seed and pool,
-- so random.Random(seed).sample(pool, n) re-run gives the same result.
CREATE TABLE IF NOT EXISTS expert_draws (
    draw_id       BIGINT PRIMARY KEY,
    task_id       BIGINT NOT NULL,
    parent_draw_id BIGINT,               -- set for a redraw
    replaces_expert_id INTEGER,          -- set for a redraw: the expert who declined
    drawn_by      VARCHAR NOT NULL,
    drawn_at      TIMESTAMPTZ NOT NULL,
    criteria      VARCHAR NOT NULL,      -- JSON: tags, type, county, enterprise, exclude_days, n
    seed          BIGINT NOT NULL,
    pool          INTEGER[] NOT NULL,    -- qualified expert ids, ascending
    pool_size     INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    result        INTEGER[] NOT NULL     -- drawn expert ids, in draw order
);

CREATE TABLE IF NOT EXISTS expert_draw_members (
    draw_id       BIGINT NOT NULL,
    task_id       BIGINT NOT NULL,
    expert_id     INTEGER NOT NULL,
    drawn_at      TIMESTAMPTZ NOT NULL,
    status        VARCHAR NOT NULL,      -- drawn / declined
    declined_at   TIMESTAMPTZ,
    note          VARCHAR
);

-- Rating after a task (1..5 each); experts.rating is updated as a running mean.
CREATE TABLE IF NOT EXISTS expert_ratings (
    task_id       BIGINT NOT NULL,
    expert_id     INTEGER NOT NULL,
    professionalism DOUBLE NOT NULL,
    conduct       DOUBLE NOT NULL,
    timeliness    DOUBLE NOT NULL,
    score         DOUBLE NOT NULL,
    rated_by      VARCHAR NOT NULL,
    rated_at      TIMESTAMPTZ NOT NULL
);

-- Fees owed to an expert for a task (settled per expert and period).
CREATE TABLE IF NOT EXISTS expert_fees (
    fee_id        BIGINT PRIMARY KEY,
    task_id       BIGINT NOT NULL,
    expert_id     INTEGER NOT NULL,
    work_date     DATE NOT NULL,
    days          DOUBLE NOT NULL,
    daily_rate    DOUBLE NOT NULL,
    travel        DOUBLE NOT NULL,
    amount        DOUBLE NOT NULL,
    recorded_by   VARCHAR NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL
);

-- 调拨: request -> approve -> ship (stock leaves) -> receive (stock arrives, when the
-- destination is a warehouse). status: requested / approved / shipped / received / rejected.
CREATE TABLE IF NOT EXISTS dispatches (
    dispatch_id   BIGINT PRIMARY KEY,
    kind_id       INTEGER NOT NULL,
    quantity      DOUBLE NOT NULL,
    from_warehouse_id INTEGER NOT NULL,
    to_warehouse_id INTEGER,             -- NULL when delivered to a place
    destination   VARCHAR NOT NULL,      -- warehouse name, county or place
    requester     VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL,
    approved_by   VARCHAR,
    approved_at   TIMESTAMPTZ,
    shipped_by    VARCHAR,
    shipped_at    TIMESTAMPTZ,
    received_by   VARCHAR,
    received_at   TIMESTAMPTZ,
    note          VARCHAR
);

-- Every movement of stock: stock.quantity = stock.initial_quantity + SUM(delta).
CREATE TABLE IF NOT EXISTS stock_ledger (
    entry_id      BIGINT PRIMARY KEY,
    warehouse_id  INTEGER NOT NULL,
    kind_id       INTEGER NOT NULL,
    delta         DOUBLE NOT NULL,
    reason        VARCHAR NOT NULL,      -- ship / receive / adjust
    dispatch_id   BIGINT,
    actor         VARCHAR NOT NULL,
    moved_at      TIMESTAMPTZ NOT NULL,
    note          VARCHAR
);

-- ---------------------------------------------------------------- demo data (owner: data generator)
-- Industry keys of enterprises.industry with their labels (views must not import data/).
CREATE TABLE IF NOT EXISTS industries (
    industry      VARCHAR PRIMARY KEY,   -- hazchem, mining, ...
    name_zh       VARCHAR NOT NULL,      -- 危险化学品
    name_en       VARCHAR NOT NULL       -- Hazardous chemicals
);

-- How the store was generated: scale, seed, reference date (key/value text).
CREATE TABLE IF NOT EXISTS build_info (
    key           VARCHAR PRIMARY KEY,
    value         VARCHAR NOT NULL
);

-- ---------------------------------------------------------------- analysts
-- Saved query consoles (/console): cells as JSON [{"sql": ..., "title": ...}]; pinned ones
-- are shown, run, on /pinned (and wherever a dashboard puts views.query_console.PinnedConsole).
-- owner: who first saved the name; only they or an administrator change or delete it (NULL:
-- saved before owners were recorded, an administrator's to change). saved_by: the last saver.
CREATE TABLE IF NOT EXISTS saved_consoles (
    name          VARCHAR PRIMARY KEY,
    cells         VARCHAR NOT NULL,
    pinned        BOOLEAN NOT NULL DEFAULT FALSE,
    saved_by      VARCHAR,
    saved_at      TIMESTAMPTZ NOT NULL,
    owner         VARCHAR
);
-- stores created before the owner column (CREATE TABLE IF NOT EXISTS leaves them as they are)
ALTER TABLE saved_consoles ADD COLUMN IF NOT EXISTS owner VARCHAR;

-- ---------------------------------------------------------------- drills (应急演练)
-- Every row born of an exercise carries the drill it belongs to (NULL: real). A store built
-- before drills existed gets the columns here (idempotent).
ALTER TABLE readings ADD COLUMN IF NOT EXISTS drill_id VARCHAR;
ALTER TABLE hotspots ADD COLUMN IF NOT EXISTS drill_id VARCHAR;
ALTER TABLE quakes ADD COLUMN IF NOT EXISTS drill_id VARCHAR;
ALTER TABLE warnings ADD COLUMN IF NOT EXISTS drill_id VARCHAR;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS drill_id VARCHAR;
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS drill_id VARCHAR;

-- One row per drill the console saw: when its first and last messages came, who started it,
-- when its rows were purged (the rows of a purged drill are gone; this row stays).
CREATE TABLE IF NOT EXISTS drills (
    drill_id      VARCHAR PRIMARY KEY,
    scenario      VARCHAR,
    title         VARCHAR,
    started_at    TIMESTAMPTZ NOT NULL,
    started_by    VARCHAR NOT NULL,      -- the officer who started it, or 'feed:<url>'
    last_seen_at  TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ,           -- stopped from the console (its last messages follow)
    purged_at     TIMESTAMPTZ,
    purged_by     VARCHAR,
    purged_rows   BIGINT
);
ALTER TABLE drills ADD COLUMN IF NOT EXISTS ended_at TIMESTAMPTZ;


-- ---------------------------------------------------------------- command (指挥调度; owner: sources/command)
-- Append-only, like warnings: no row is updated or deleted. The state of anything at time T
-- is its latest row with ``acted_at`` <= T (case replay reads the store this way). Every row names
-- the acting user. Each version of an officer's incident is also appended to ``incidents``
-- (feed = 'command', seq from command_ids, level = the grade's colour), so the wall, the
-- ticker and the feed's incidents are one list; a feed incident taken over keeps its id.
CREATE SEQUENCE IF NOT EXISTS command_ids START 1;

-- Each version of an incident under command: intake, correction, grade, response, close.
CREATE TABLE IF NOT EXISTS command_incidents (
    incident_id   VARCHAR NOT NULL,      -- 'CMD-YYYYMMDD-N', or the feed incident's id
    version       INTEGER NOT NULL,      -- 1, 2, ...: one writer wins a version
    change        VARCHAR NOT NULL,      -- intake / correct / grade / response / close
    origin        VARCHAR NOT NULL,      -- officer / alarm / feed
    origin_ref    VARCHAR,               -- alarm id, or feed URL:seq of the feed incident
    category      VARCHAR NOT NULL,      -- natural / accident / health / social
    subtype       VARCHAR NOT NULL,      -- fire, hazchem_leak, flood, ... (sources/command/catalog.py)
    title         VARCHAR NOT NULL,
    lon           DOUBLE NOT NULL,
    lat           DOUBLE NOT NULL,
    county_code   VARCHAR NOT NULL,
    place         VARCHAR,               -- address / place name as reported
    enterprise_id INTEGER,
    installation_id INTEGER,
    alarm_id      BIGINT,
    occurred_at   TIMESTAMPTZ NOT NULL,
    learned_at    TIMESTAMPTZ NOT NULL,  -- the bureau learned of it: the report clock starts
    deaths        INTEGER NOT NULL,
    missing       INTEGER NOT NULL,
    injured       INTEGER NOT NULL,      -- seriously injured (acute poisoning included)
    loss_wan      DOUBLE NOT NULL,       -- direct economic loss, 10,000 yuan (万元)
    reporter      VARCHAR,
    reporter_phone VARCHAR,
    description   VARCHAR,
    wind_from_deg DOUBLE,                -- wind direction entered by an officer (from, degrees)
    grade         VARCHAR NOT NULL,      -- I / II / III / IV (特别重大 / 重大 / 较大 / 一般)
    grade_computed VARCHAR,              -- what the rule gives (NULL: no rule for the type)
    grade_rule    VARCHAR,               -- the criterion that fired
    grade_reason  VARCHAR,               -- set when an officer overrides the rule
    response_level VARCHAR,              -- I..IV once a response is launched
    plan_id       VARCHAR,               -- the plan (data/plans/<id>.toml) opened by it
    status        VARCHAR NOT NULL,      -- open / closed
    closed_at     TIMESTAMPTZ,
    jurisdiction  VARCHAR,               -- county/city/province code of the acting desk
    note          VARCHAR,
    actor         VARCHAR NOT NULL,
    acted_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, version)
);

-- The checklist a response launch opened: the plan's measures for that level. ``activation``
-- is the incident version of the launch (a change of level opens a new checklist).
CREATE TABLE IF NOT EXISTS command_plan_items (
    incident_id   VARCHAR NOT NULL,
    activation    INTEGER NOT NULL,
    item_no       INTEGER NOT NULL,
    plan_id       VARCHAR NOT NULL,
    response_level VARCHAR NOT NULL,
    measure       VARCHAR NOT NULL,
    measure_en    VARCHAR,
    unit          VARCHAR NOT NULL,      -- responsible unit
    within_min    INTEGER,
    opened_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, activation, item_no)
);

-- Ticks (and unticks) of checklist items: the latest row of an item is its state.
CREATE TABLE IF NOT EXISTS command_plan_ticks (
    incident_id   VARCHAR NOT NULL,
    activation    INTEGER NOT NULL,
    item_no       INTEGER NOT NULL,
    tick          INTEGER NOT NULL,      -- 1, 2, ... per item
    done          BOOLEAN NOT NULL,
    note          VARCHAR,
    actor         VARCHAR NOT NULL,
    acted_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, activation, item_no, tick)
);

-- Tasks of one-key dispatch: a team, materials (a row of dispatches), an expert draw
-- (expert_tasks / expert_draws) or a shelter opened.
CREATE TABLE IF NOT EXISTS command_tasks (
    task_id       BIGINT PRIMARY KEY,
    incident_id   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,      -- team / materials / experts / shelter
    resource_id   BIGINT,                -- team_id / warehouse_id / expert task_id / shelter_id
    resource_name VARCHAR NOT NULL,
    quantity      DOUBLE,                -- members / material quantity / experts / people
    unit          VARCHAR,
    dispatch_id   BIGINT,                -- materials: the dispatch of the ledger
    draw_id       BIGINT,                -- experts: the audited draw
    detail        VARCHAR,               -- JSON: kind_id, expert ids, ...
    base_lon      DOUBLE,                -- where the resource sets out from
    base_lat      DOUBLE,
    owner         VARCHAR NOT NULL,      -- officer responsible for the task
    created_by    VARCHAR NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- States of a task: assigned -> en_route -> on_scene -> done, or cancelled from any but done.
CREATE TABLE IF NOT EXISTS command_task_states (
    task_id       BIGINT NOT NULL,
    seq           INTEGER NOT NULL,      -- 1, 2, ...: one writer wins each step
    state         VARCHAR NOT NULL,
    note          VARCHAR,
    actor         VARCHAR NOT NULL,
    acted_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Commitments of teams and shelters: slot n+1 of a resource can only be taken once, so of
-- two officers committing the same free team at once exactly one wins. A resource is free
-- again when the task of its latest slot is done or cancelled.
CREATE TABLE IF NOT EXISTS command_commitments (
    resource      VARCHAR NOT NULL,      -- team / shelter
    resource_id   BIGINT NOT NULL,
    slot          INTEGER NOT NULL,
    task_id       BIGINT NOT NULL,
    incident_id   VARCHAR NOT NULL,
    actor         VARCHAR NOT NULL,
    acted_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (resource, resource_id, slot)
);

-- Reports (信息报送): phone notice, first, follow-up, final; a correction is a new version.
CREATE TABLE IF NOT EXISTS command_reports (
    report_id     BIGINT NOT NULL,
    version       INTEGER NOT NULL,
    incident_id   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,      -- phone / first / followup / final
    title         VARCHAR NOT NULL,
    body          VARCHAR NOT NULL,
    recipient     VARCHAR,               -- the level reported to
    submitted_by  VARCHAR NOT NULL,
    submitted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (report_id, version)
);

-- Officers' notes on the incident's timeline.
CREATE TABLE IF NOT EXISTS command_notes (
    note_id       BIGINT PRIMARY KEY,
    incident_id   VARCHAR NOT NULL,
    text          VARCHAR NOT NULL,
    actor         VARCHAR NOT NULL,
    acted_at      TIMESTAMPTZ NOT NULL
);
-- An officer's incident of a drill (opened from a drill's alarm, taken over from a drill's
-- feed incident, or marked an exercise at intake) carries the drill, as its mirror rows in
-- ``incidents`` do; a drill's purge removes it with its tasks, checklist, reports and notes.
ALTER TABLE command_incidents ADD COLUMN IF NOT EXISTS drill_id VARCHAR;
-- ---------------------------------------------------------------- end of command
