mod scrape;
