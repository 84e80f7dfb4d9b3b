-- Read-only views for reporting (a BI tool's role needs SELECT on these only).

-- Every ticket with its status and SLA due times.
CREATE VIEW report_tickets AS
SELECT number,
       status,
       status NOT IN ('resolved', 'closed') AS open,
       client_id,
       owner,
       subject,
       to_timestamp(created_s) AS created_at,
       to_timestamp(updated_s) AS updated_at,
       sla_level,
       to_timestamp(reaction_due_s) AS reaction_due,
       to_timestamp(in_work_due_s) AS in_work_due,
       (status NOT IN ('resolved', 'closed') AND reaction_due_s IS NOT NULL
            AND reaction_due_s < extract(epoch FROM now())) AS reaction_overdue
FROM tickets;

-- Decisions per day (UTC), outcome and finding code.
CREATE VIEW report_findings_daily AS
SELECT (to_timestamp(m.received_s) AT TIME ZONE 'UTC')::date AS day,
       m.outcome,
       f.code,
       count(*) AS messages
FROM messages m
CROSS JOIN LATERAL unnest(CASE WHEN cardinality(m.findings) = 0 THEN ARRAY['(none)'] ELSE m.findings END) AS f(code)
GROUP BY 1, 2, 3;
